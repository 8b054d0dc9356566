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
            "esqueça", "esqueca", "negeer", "vergeet",
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
            "instrucoes", "instrucao", "instructies", "regels",
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
        ])
        add(.secretWeak, [
            "password", "passwords", "passphrase", "secret", "secret word", "secret key", "api key", "access code",
            "mot de passe", "passwort", "kennwort", "geheimnis", "contrasena", "clave secreta", "parola d ordine",
            "la password", "parola segreta", "senha",
            "密码", "密碼", "口令", "秘密", "密钥", "パスワード", "合言葉",
        ])
        add(.roleReassign, [
            "you are now", "you re now", "now you are", "from now on you are", "you are no longer",
            "tu es maintenant", "vous etes maintenant", "maintenant tu es", "tu n es plus",
            "du bist jetzt", "du bist nun", "jetzt bist du", "nun bist du", "stell dir vor du bist", "du bist kein",
            "ahora eres", "ya no eres", "ora sei", "adesso sei", "non sei piu",
            "你现在是", "你現在是", "你不再是", "あなたは今から", "あなたはもう",
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
        ])
        add(.newTask, [
            "new instructions", "new instruction", "new task", "new tasks", "new rules", "your new task",
            "your new instructions", "updated instructions", "real instructions", "actual instructions",
            "nouvelle tache", "nouvelles instructions", "nouvelle instruction", "neue aufgabe", "neue anweisung",
            "neue anweisungen", "neue regeln", "neue aufgaben", "neuen aufgabe", "neues thema", "new challenge",
            "start over", "start from scratch", "that is enough", "that's enough", "das genugt", "das reicht", "c est assez",
            "nouvelles taches", "nuevas tareas", "nuovi compiti", "nueva tarea", "nuevas instrucciones", "nuovo compito",
            "nuove istruzioni", "新任务", "新的任务", "新指令", "新的指令", "新しい指示", "新しいタスク", "新たな指示",
        ])
        add(.meta, [
            "example", "examples", "for instance", "such as", "e g", "prompt injection", "prompt injections",
            "injection", "injections", "attack", "attacks", "attacker", "attackers", "classify", "classifier",
            "detect", "detection", "detector", "course", "lesson", "phrase", "quote", "quoted", "dataset",
            "malicious", "red team", "red teaming", "security", "defend", "defense", "defence", "mitigate",
            "exemple", "par exemple", "attaque", "beispiel", "zum beispiel", "angriff", "ejemplo", "por ejemplo",
            "ataque", "esempio", "ad esempio", "attacco",
            "例如", "比如", "例子", "示例", "攻击", "注入", "例えば", "攻撃", "インジェクション",
        ])
        add(.negation, ["do not", "don t", "dont", "never", "not", "ne pas", "nicht", "no", "non", "不要", "别"])
        return out
    }
}
