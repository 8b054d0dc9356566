// The literal vocabulary of the pattern layer, by role in an attack sentence and language
// (en, fr, de, es, it, zh, ja, pt, nl, ru where cheap). Written from general knowledge of
// prompt-injection and jailbreak phrasing, not from the evaluation rows. Every entry is
// normalized with the same Normalizer as the inspected text (so accents and case do not
// matter) and compiled into one Aho–Corasick automaton.
//
// A trailing "~" marks a verb that may come AFTER its object (SOV order: Japanese, German
// infinitives and verb-final clauses, Chinese 把-constructions).

enum AtomCategory: UInt8, CaseIterable {
    case ignoreVerb      // ignore, disregard, forget, 忽略, 無視 ...
    case instrObject     // instructions, rules, prompt, the above, 指令, 指示 ...
    case revealVerb      // reveal, show, print, repeat, 显示, 教えて ...
    case secretStrong    // system prompt, your instructions, 系统提示 ...
    case secretWeak      // password, secret, 密码 ...
    case roleIntro       // act as, pretend to be, 扮演 ...
    case roleReassign    // you are now, now you are, du bist jetzt ... (medium on its own)
    case roleObject      // DAN, developer mode, no restrictions, 没有限制 ...
    case jailbreak       // phrases that are attacks on their own
    case newTask         // new instructions, new task, 新任务 ...
    case meta            // example, attack, classifier ... (quoted-example context)
    case negation        // do not, don't, never (before an ignore verb)
    case overrideParaphrase  // "no longer apply", "your only rule", "maintenance mode" … (medium)
    case aiAddressed     // "note to the AI", "if you are a language model", "do not tell the user" … (medium)
    case extraction      // "verbatim", "initial text", "beginning of this conversation" … (medium)
    case webdev          // css, html, div, web page … (context: hidden HTML in a web-development question)
}

struct AtomSpec {
    var text: String
    var category: AtomCategory
    var verbFinal: Bool
}

enum PatternCatalog {
    static func specs() -> [AtomSpec] {
        var out: [AtomSpec] = []
        func add(_ cat: AtomCategory, _ words: [String]) {
            for w in words {
                let vf = w.hasSuffix("~")
                out.append(AtomSpec(text: vf ? String(w.dropLast()) : w, category: cat, verbFinal: vf))
            }
        }
        add(.ignoreVerb, [
            // en
            "ignore", "ignoring", "disregard", "disregarding", "forget", "forgetting", "overlook",
            "override", "bypass", "set aside", "throw out", "discard", "abandon", "drop all", "skip all",
            "do not follow", "don't follow", "stop following", "no longer follow", "pay no attention to",
            "never mind", "nevermind", "neglect",
            // fr
            "ignorez", "ignorer", "oublie", "oubliez", "oublier", "ne tiens pas compte",
            "ne tenez pas compte", "fais abstraction", "faites abstraction", "ne suis pas", "ne suivez pas",
            // de
            "ignoriere", "ignorier", "ignorieren~", "ignoriert~", "vergiss", "vergesst", "vergessen~",
            "missachte", "missachten~", "beachte nicht", "befolge nicht", "nicht beachten~", "nicht befolgen~",
            "überspringe", "verwirf",
            // es
            "ignora", "ignoren", "ignorar", "olvida", "olvide", "olviden", "olvidar", "haz caso omiso",
            "no sigas", "no sigan", "descarta", "omite",
            // it
            "ignori", "ignorare", "ignorate", "dimentica", "dimenticare", "dimenticate", "non seguire",
            "non rispettare", "trascura", "tralascia",
            // pt / nl
            "esqueça", "esqueca", "negeer", "vergeet", "desconsidere", "desconsidera", "descarte", "não siga", "nao siga",
            "deixe de lado", "ignorem", "não obedeça", "pare de seguir",
            // ru / uk
            "игнорируй", "игнорируйте", "проигнорируй", "проигнорируйте", "забудь", "забудьте", "не обращай внимания на",
            "не следуй", "отбрось", "пренебреги", "игнорировать~", "забыть~",
            "ігноруй", "ігноруйте", "проігноруй", "забудьте", "не звертай уваги на", "не дотримуйся", "відкинь", "ігнорувати~",
            // zh
            "忽略~", "忽视~", "无视~", "無視~", "忘记~", "忘掉~", "忘了~", "不要遵守", "不要理会", "不用理会", "跳过~", "抛开~", "放弃~",
            // ja
            "無視~", "忘れ~", "従わな~", "従うな", "破棄~",
        ])
        add(.instrObject, [
            // en
            "instruction", "instructions", "directive", "directives", "prompt", "prompts", "rule", "rules",
            "guideline", "guidelines", "restriction", "restrictions", "constraint", "constraints",
            "programming", "system prompt", "system message", "the above", "everything above", "all above",
            "all previous", "all prior", "all earlier", "what i said", "what you were told", "your training",
            "previous text", "prior text", "previous context", "your orders", "your commands",
            "safety", "filters", "guardrails", "everything before", "above", "preceding", "task", "tasks",
            "assignment", "assignments", "previous information", "all information", "everything", "all of it",
            // fr
            "tache", "taches", "tout", "ci dessus", "consigne", "consignes", "regle", "regles", "tout ce qui precede", "ce qui precede",
            // de
            "anweisung", "anweisungen", "anleitung", "regel", "regeln", "vorgaben", "befehle", "richtlinien",
            "alles davor", "alles vorherige", "alles bisherige", "einschränkungen", "aufgabe", "aufgaben",
            "auftrag", "aufträge", "angaben", "informationen", "die obigen", "das obige", "obigen", "alles",
            // es
            "instruccion", "instrucciones", "indicaciones", "reglas", "ordenes", "directrices", "restricciones", "tarea", "tareas", "todo", "lo anterior",
            // it
            "istruzione", "istruzioni", "regole", "direttive", "indicazioni", "restrizioni", "compito", "compiti", "tutto", "quanto sopra",
            // pt / nl
            "instrucoes", "instrucao", "instructies", "regels", "regras", "diretrizes", "orientacoes", "tudo acima",
            "restricoes", "tudo o que foi dito", "tarefa", "tudo",
            // ru / uk
            "инструкции", "инструкций", "инструкциям", "указания", "указаний", "правила", "правил", "ограничения",
            "все предыдущие", "все что выше", "все", "задание", "промпт",
            "інструкції", "інструкцій", "вказівки", "вказівок", "правила", "обмеження", "усі попередні", "все", "усе", "завдання",
            // zh
            "指令", "指示", "规则", "規則", "提示词", "提示", "命令", "设定", "约束", "限制", "以上内容", "上面的内容", "之前的内容", "前面的内容", "上述",
            // ja
            "ルール", "プロンプト", "制約", "設定", "以前の内容", "上記",
        ])
        add(.revealVerb, [
            // en
            "reveal", "show me", "show us", "print", "display", "output", "repeat", "tell me", "tell us",
            "give me", "share", "leak", "disclose", "spell out", "spell", "write down", "write out", "list",
            "what is", "what's", "what are", "recite", "dump", "expose", "translate",
            // fr
            "revele", "montre", "montrez", "affiche", "affichez", "donne moi", "donnez moi", "dis moi", "dites moi", "repete", "ecris",
            // de
            "zeige", "zeig", "verrate", "verrat", "gib mir", "nenne", "wiederhole", "schreibe", "ausgeben~", "verraten~", "nennen~",
            // es
            "revela", "muestra", "muestrame", "dime", "imprime", "repite", "escribe", "dame",
            // it
            "rivela", "mostra", "mostrami", "dimmi", "stampa", "ripeti", "scrivi", "dammi",
            // zh
            "显示~", "告诉我~", "输出~", "透露~", "打印~", "重复~", "泄露~", "说出~", "给我~", "是什么",
            // ja
            "教えて~", "表示~", "出力~", "見せて~", "繰り返~", "漏ら~", "書いて~",
            // pt
            "revele", "mostre", "exiba", "imprima", "repita", "diga", "me diga", "escreva", "me de", "me passe",
            // ru / uk
            "покажи", "выведи", "раскрой", "расскажи", "повтори", "напиши", "назови", "скажи", "процитируй",
            "виведи", "розкрий", "розкажи", "назви", "процитуй",
        ])
        add(.secretStrong, [
            "system prompt", "your prompt", "initial prompt", "original prompt", "hidden prompt", "secret prompt",
            "your instructions", "your initial instructions", "your original instructions", "your system message",
            "your rules", "your guidelines", "the instructions above", "the text above", "everything above",
            "your configuration", "pre prompt", "preprompt", "developer message", "hidden instructions",
            "prompt systeme", "tes instructions", "vos instructions", "deine anweisungen", "ihre anweisungen",
            "systemprompt", "tus instrucciones", "sus instrucciones", "le tue istruzioni",
            "系统提示", "系统提示词", "系統提示", "提示词", "初始指令", "你的指令",
            "システムプロンプト", "あなたの指示", "初期指示",
            "prompt do sistema", "suas instrucoes", "tuas instrucoes", "instrucoes ocultas", "prompt inicial",
            "системный промпт", "системную подсказку", "системные инструкции", "твои инструкции", "ваши инструкции",
            "скрытые инструкции", "исходный промпт", "системний промпт", "твої інструкції", "ваші інструкції", "приховані інструкції",
        ])
        add(.secretWeak, [
            "password", "passwords", "passphrase", "secret", "secret word", "secret key", "api key", "access code",
            "mot de passe", "passwort", "kennwort", "geheimnis", "contrasena", "clave secreta", "parola d ordine",
            "la password", "parola segreta", "senha",
            "密码", "密碼", "口令", "秘密", "密钥", "パスワード", "合言葉",
            "segredo", "chave secreta", "пароль", "секрет", "секретный ключ", "секретний ключ",
        ])
        add(.roleReassign, [
            "you are now", "you re now", "now you are", "from now on you are", "you are no longer",
            "tu es maintenant", "vous etes maintenant", "maintenant tu es", "tu n es plus",
            "du bist jetzt", "du bist nun", "jetzt bist du", "nun bist du", "stell dir vor du bist", "du bist kein",
            "ahora eres", "ya no eres", "ora sei", "adesso sei", "non sei piu",
            "你现在是", "你現在是", "你不再是", "あなたは今から", "あなたはもう",
            "agora voce e", "voce agora e", "voce nao e mais", "теперь ты", "ты теперь", "отныне ты", "ты больше не",
            "тепер ти", "ти тепер", "відтепер ти", "ти більше не",
        ])
        add(.roleIntro, [
            "you are now", "now you are", "from now on", "act as", "acting as", "pretend to be", "pretend you are",
            "pretend that you are", "roleplay as", "role play as", "you will now", "imagine you are", "simulate",
            "you are going to act", "you are going to pretend", "stay in character", "behave as", "respond as",
            "tu es maintenant", "vous etes maintenant", "fais semblant", "faites semblant", "agis comme", "agissez comme",
            "a partir de maintenant", "desormais",
            "du bist jetzt", "du bist nun", "ab jetzt", "von nun an", "tu so als", "spiele die rolle", "verhalte dich wie",
            "ahora eres", "actua como", "finge ser", "finge que eres", "a partir de ahora", "desde ahora",
            "ora sei", "adesso sei", "fingi di essere", "agisci come", "d ora in poi", "da ora in poi",
            "你现在是", "你現在是", "从现在开始", "從現在開始", "扮演", "假装", "假裝",
            "あなたは今", "今から", "これから", "なりきって", "ふりをして", "演じて",
            "finja ser", "finja que e", "aja como", "atue como", "a partir de agora", "de agora em diante", "faca de conta",
            "притворись", "представь что ты", "веди себя как", "сыграй роль", "действуй как", "с этого момента",
            "вдавай", "уяви що ти", "поводься як", "зіграй роль", "дій як", "з цього моменту",
        ])
        add(.roleObject, [
            "dan", "dude", "stan", "jailbreak", "jailbroken", "developer mode", "dev mode", "god mode", "unfiltered",
            "uncensored", "unrestricted", "no restrictions", "without restrictions", "no limits", "without limits",
            "no rules", "without rules", "no ethical", "no ethics", "no morals", "no moral", "amoral", "unethical",
            "no filters", "without filters", "no guidelines", "without any", "not bound by", "free from", "evil",
            "sans restriction", "sans restrictions", "sans limite", "sans limites", "sans regles", "sans filtre",
            "ohne einschränkungen", "ohne regeln", "ohne grenzen", "ohne filter", "uneingeschränkt",
            "sin restricciones", "sin limites", "sin reglas", "sin filtros", "sin censura",
            "senza restrizioni", "senza limiti", "senza regole", "senza filtri", "senza censura",
            "没有限制", "不受限制", "无限制", "無限制", "没有任何限制", "不受约束", "越狱", "开发者模式",
            "制限なし", "制限のない", "制約なし", "制約のない", "脱獄", "開発者モード",
            "sem restricoes", "sem limites", "sem regras", "sem filtros", "sem censura", "modo desenvolvedor", "modo de desenvolvedor",
            "без ограничений", "без цензуры", "без правил", "без фильтров", "режим разработчика",
            "без обмежень", "без цензури", "без фільтрів", "режим розробника",
            "entwicklermodus", "ohne zensur", "unzensiert", "mode developpeur", "sans censure", "non censure",
            "modo desarrollador", "modalita sviluppatore", "no content policy", "never refuses", "never refuse",
            "without refusing", "no warnings", "ne refuse jamais", "verweigert nie", "nunca se niega", "non rifiuta mai",
            "nunca recusa", "никогда не отказывает", "ніколи не відмовляє", "从不拒绝", "没有道德", "決して断らない", "倫理観のない",
        ])
        add(.jailbreak, [
            "do anything now", "developer mode enabled", "dan mode", "jailbreak mode", "jailbroken mode",
            "ignore all previous instructions", "ignore previous instructions", "ignore the previous instructions",
            "ignore all prior instructions", "ignore your instructions", "disregard previous instructions",
            "disregard all previous instructions", "forget all previous instructions", "forget your instructions",
            "forget everything", "forget all your instructions", "ignore the above", "ignore everything above",
            "ignore all instructions", "ignore your programming", "override your programming",
            "new system prompt", "system override", "admin override", "end of system prompt",
            "oublie tout", "oubliez tout", "vergiss alles", "olvida todo", "dimentica tutto",
            "忘记一切", "忘掉一切", "忽略以上", "忽略上面", "忽略之前", "忽略前面", "无视以上", "すべて忘れ", "全て忘れ",
            "esqueca tudo", "забудь все", "забудь всё", "забудь усе", "забудь все що",
        ])
        add(.newTask, [
            "new instructions", "new instruction", "new task", "new tasks", "new rules", "your new task",
            "your new instructions", "updated instructions", "real instructions", "actual instructions",
            "nouvelle tache", "nouvelles instructions", "nouvelle instruction", "neue aufgabe", "neue anweisung",
            "neue anweisungen", "neue regeln", "neue aufgaben", "neuen aufgabe", "neues thema", "new challenge",
            "start over", "start from scratch", "that is enough", "that's enough", "das genugt", "das reicht", "c est assez",
            "nouvelles taches", "nuevas tareas", "nuovi compiti", "nueva tarea", "nuevas instrucciones", "nuovo compito",
            "nuove istruzioni", "新任务", "新的任务", "新指令", "新的指令", "新しい指示", "新しいタスク", "新たな指示",
            "nova tarefa", "novas instrucoes", "новая задача", "новые инструкции", "нове завдання", "нові інструкції",
        ])
        add(.meta, [
            "example", "examples", "for instance", "such as", "e g", "prompt injection", "prompt injections",
            "injection", "injections", "attack", "attacks", "attacker", "attackers", "classify", "classifier",
            "detect", "detection", "detector", "course", "lesson", "phrase", "quote", "quoted", "dataset",
            "malicious", "red team", "red teaming", "security", "defend", "defense", "defence", "mitigate",
            "exemple", "par exemple", "attaque", "beispiel", "zum beispiel", "angriff", "ejemplo", "por ejemplo",
            "ataque", "esempio", "ad esempio", "attacco",
            "例如", "比如", "例子", "示例", "攻击", "注入", "例えば", "攻撃", "インジェクション",
            "por exemplo", "exemplo", "injecao", "например", "пример", "атака", "атаки", "инъекция", "наприклад", "приклад",
            "phishing", "hameconnage", "bug report", "wrote", "said", "says", "claims",
            "a user wrote", "someone wrote", "customer wrote", "schrieb", "geschrieben", "a ecrit", "escribio", "ha scritto",
            "escreveu", "написал", "написав", "写道", "と書", "投稿",
        ])
        add(.overrideParaphrase, [
            "no longer apply", "no longer applies", "no longer valid", "no longer in effect", "null and void", "supersede",
            "supersedes", "takes precedence", "your only rule", "your only task", "your only instruction", "you were told",
            "earlier guidance", "previous guidance", "prior guidance", "clean slate", "blank slate", "factory settings",
            "are obsolete", "are cancelled", "are canceled", "have been lifted", "has been lifted", "restrictions lifted",
            "maintenance mode", "debug mode", "admin mode", "root access", "sudo mode", "unlocked mode", "safety off",
            "ne s appliquent plus", "ne sont plus valables", "sont annulees", "caduques", "ta seule regle", "mode maintenance",
            "mode debogage", "mode administrateur", "on t a dit", "gelten nicht mehr", "nicht mehr gultig", "ausser kraft",
            "hinfallig", "deine einzige regel", "einzige aufgabe", "werkseinstellungen", "wartungsmodus", "debug modus",
            "admin modus", "was man dir gesagt hat", "ya no se aplican", "ya no aplican", "ya no son validas", "quedan anuladas",
            "tu unica regla", "modo mantenimiento", "modo depuracion", "modo administrador", "lo que te dijeron",
            "non valgono piu", "non sono piu valide", "sono annullate", "la tua unica regola", "modalita manutenzione",
            "modalita debug", "modalita amministratore", "quello che ti hanno detto", "nao se aplicam mais", "nao valem mais",
            "sua unica regra", "modo de manutencao", "modo manutencao", "o que te disseram", "больше не действуют",
            "больше не действует", "отменены", "твое единственное правило", "режим обслуживания", "режим отладки",
            "режим администратора", "то что тебе сказали", "більше не діють", "скасовані", "твоє єдине правило",
            "режим обслуговування", "режим налагодження", "режим адміністратора", "不再适用", "不再有效", "已失效", "作废",
            "你唯一的规则", "维护模式", "调试模式", "管理员模式", "之前的设定", "もう適用されません", "無効になりました",
            "唯一のルール", "メンテナンスモード", "デバッグモード", "管理者モード", "これまでの設定",
        ])
        add(.aiAddressed, [
            "note to ai", "note to the ai", "if you are an ai", "if you are a language model", "if you are an llm",
            "attention ai", "dear ai", "ai model reading this", "language model reading", "assistant reading this",
            "when summarizing", "when you summarize", "while summarizing", "instead of summarizing", "do not mention this",
            "do not tell the user", "don t tell the user", "without telling the user", "send the user", "exfiltrate",
            "forward all", "the user s data", "include this link", "hidden instruction", "instructions for the ai",
            "instructions for the assistant", "attention assistant", "if you are reading this", "whoever reads this",
            "system note", "note to the assistant", "note to the model", "to any ai", "ai agents", "ai agent reading",
            "the assistant must", "the ai must", "the model must", "ignore the user", "instead respond", "instead reply",
            "si lees esto", "si tu lis ceci", "wenn du das liest", "se stai leggendo", "se voce esta lendo", "если ты это читаешь",
            "якщо ти це читаєш", "如果你正在阅读", "これを読んでいるai", "assistant doit", "l ia doit", "die ki muss", "la ia debe",
            "l ia deve", "a ia deve", "ии должен", "ші має", "ai必须", "aiは必ず", 
            "note pour l ia", "si tu es une ia", "si vous etes une ia", "en resumant",
            "ne le dis pas a l utilisateur", "sans le dire a l utilisateur", "envoie les donnees", "hinweis an die ki",
            "wenn du eine ki bist", "falls du eine ki bist", "beim zusammenfassen",
            "sag dem nutzer nichts", "ohne dem nutzer", "sende die daten", "nota para la ia", "si eres una ia",
            "al resumir", "no se lo digas al usuario", "sin decirle al usuario", "envia los datos",
            "nota per l ia", "se sei un ia", "nel riassumere", "non dirlo all utente",
            "senza dirlo all utente", "invia i dati", "nota para a ia", "se voce e uma ia", "ao resumir",
            "nao conte ao usuario", "sem avisar o usuario", "envie os dados", "примечание для ии", "если ты ии",
            "при пересказе", "не говори пользователю", "отправь данные", "языковая модель", "примітка для ші",
            "якщо ти ші", "не кажи користувачу", "надішли дані", "мовна модель", "给ai", "致ai", "如果你是ai",
            "如果你是人工智能", "总结时", "不要告诉用户", "发送用户", "语言模型", "aiへ", "もしあなたがai", "要約する際",
            "要約するときは", "ユーザーに伝えず", "ユーザーには言わず", "言語モデル",
        ])
        add(.extraction, [
            "verbatim", "word for word", "initial text", "text above", "everything above this", "the words above",
            "beginning of this conversation", "start of the conversation", "start of this conversation", "your first message",
            "instructions you were given", "what were you told", "your configuration", "in a code block", "above this line",
            "mot pour mot", "texte initial", "au debut de cette conversation", "qu on t a donnees", "tes consignes",
            "wort fur wort", "wortwortlich", "anfangstext", "am anfang dieses gesprachs", "deine vorgaben",
            "deine konfiguration", "was dir gesagt wurde", "palabra por palabra", "texto inicial",
            "al principio de esta conversacion", "tus indicaciones", "que te dieron", "parola per parola", "testo iniziale",
            "all inizio di questa conversazione", "le tue indicazioni", "che ti hanno dato", "palavra por palavra",
            "no inicio desta conversa", "suas diretrizes", "que voce recebeu", "слово в слово", "дословно", "начальный текст",
            "в начале разговора", "твои настройки", "дослівно", "початковий текст", "твої налаштування", "逐字", "原封不动",
            "一字不差", "初始文本", "对话开始", "你的设定", "你收到的指令", "一字一句", "最初の指示", "会話の最初",
            "あなたの設定", "受け取った指示",
        ])
        add(.webdev, [
            "css", "html page", "html code", "my html", "element", "elements", "website", "web page", "webpage", "stylesheet", "frontend",
            "component", "accessibility", "aria", "screen reader", "screenreader", "tailwind", "bootstrap", "react", "vue",
            "dom", "selector", "media query", "responsive", "navbar", "modal", "dropdown", "tooltip", "template", "jsx",
            "webseite", "barrierefreiheit", "site web", "page web", "sitio web", "pagina web", "sito web", "site", "seite",
            "网页", "页面", "样式", "前端", "ページ", "ウェブ", "スタイル", "сайт", "сайта", "страницы", "страница", "сторінка", "сторінки",
        ])
        add(.negation, ["do not", "don t", "dont", "never", "not", "ne pas", "nicht", "no", "non", "不要", "别"])
        return out
    }
}
