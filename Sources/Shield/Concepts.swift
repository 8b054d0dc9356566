// Concept features for the semantic layer (issue 15): the same idea in every language.
//
// The n-gram model learns what it has seen, in the languages it has seen: ten examples of a
// role-play jailbreak in German teach it little about the same set-up in Italian. The concept
// lexicon maps the words of a few dozen ideas that attacks are built from ("ignore", "previous",
// "instructions", "reveal", "system", "from now on", "without limits", "developer mode", …) to
// one concept each, in fr, en, de, es, it, pt, ru, uk, zh and ja. The model then learns weights
// for concepts and for pairs of concepts that occur close together ("ignore" near
// "instructions", "reveal" near "system"), and what it learns from the rows of one language
// holds in the others. Benign ideas that share words with attacks have their own concepts
// ("my", "tone/format", "example", "wrote"), so the model can learn that "ignore my last
// question" or "a phishing mail said 'ignore…'" is not an attack.
//
// Matching runs over the semantic view (normalized: lower case, no accents, confusables
// folded, so the patterns go through the same normalization when the lexicon is built). A Latin
// or Cyrillic pattern must start a word (stems: "ignor" matches ignore, ignoring, ignorieren,
// ignora); a trailing "|" in the lexicon asks for a whole word. CJK patterns match anywhere.
// Features: each concept present, and each unordered pair of concepts whose occurrences start
// within `window` bytes of each other
// (measured between their ends). Names are "ignore" and "ignore+instr" (pair names in
// lexicon order); the model file holds a weight per name.

struct ConceptLexicon: Sendable {
    /// Concept names, in lexicon order (pair names use this order).
    let names: [String]
    let automaton: AhoCorasick
    /// Per pattern: its concept, and whether it must end a word.
    let conceptOf: [UInt8]
    let wholeWord: [Bool]
    let needsWordStart: [Bool]
    static let window = 60

    static let shared = ConceptLexicon(table: ConceptLexicon.table)

    init(table: [(String, String)]) {
        var names: [String] = [], patterns: [[UInt8]] = [], concept: [UInt8] = [], whole: [Bool] = [], start: [Bool] = []
        var seen = Set<[UInt8]>()
        for (ci, (name, list)) in table.enumerated() {
            names.append(name)
            for item in list.split(separator: ",") {
                var p = item.trimmingCharacters(in: .whitespaces)
                guard !p.isEmpty else { continue }
                let isWhole = p.hasSuffix("|")
                if isWhole { p.removeLast() }
                let bytes = ConceptLexicon.viewBytes(p)
                guard !bytes.isEmpty, seen.insert(bytes + [isWhole ? 1 : 0]).inserted else { continue }
                patterns.append(bytes)
                concept.append(UInt8(ci))
                whole.append(isWhole)
                start.append(bytes[0] < 0xE0)   // Latin, Cyrillic (folded), digits: must start a word
            }
        }
        self.names = names
        automaton = AhoCorasick(patterns: patterns)
        conceptOf = concept
        wholeWord = whole
        needsWordStart = start
    }

    /// A pattern as the semantic view writes it.
    static func viewBytes(_ s: String) -> [UInt8] {
        var s = s
        return s.withUTF8 { raw in
            let n = Normalizer.normalize(raw)
            var v: [UInt8] = []
            n.bytes.withUnsafeBufferPointer { _ = SemanticView.append($0, to: &v) }
            while v.last == 0x20 { v.removeLast() }
            while v.first == 0x20 { v.removeFirst() }
            return v
        }
    }

    /// True when the byte before `i` ends a word: start, a space, or a CJK character.
    @inline(__always) static func boundaryBefore(_ v: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        if i == 0 { return true }
        let b = v[i - 1]
        if b == 0x20 { return true }
        if b < 0x80 { return false }
        var k = i - 1
        while k > 0 && v[k] & 0xC0 == 0x80 { k -= 1 }
        return v[k] >= 0xE0
    }

    @inline(__always) static func boundaryAfter(_ v: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        if i >= v.count { return true }
        let b = v[i]
        return b == 0x20 || b >= 0xE0
    }

    /// Which concepts occur (bit c of `single`) and which pairs occur close together
    /// (bit b of `pairs[a]`, a ≤ b in lexicon order).
    struct Hits {
        var single: UInt64 = 0
        var pairs: [UInt64]
    }

    func hits(_ view: UnsafeBufferPointer<UInt8>) -> Hits {
        var h = Hits(pairs: [UInt64](repeating: 0, count: names.count))
        // The last end position of each concept (matches come in order of end position): a
        // new occurrence pairs with every other concept seen within `window` bytes before it.
        var lastEnd = [Int32](repeating: Int32.min / 2, count: names.count)
        let w = Int32(Self.window)
        automaton.forEachMatch(view) { m in
            let p = Int(m.pattern)
            if needsWordStart[p] && !Self.boundaryBefore(view, Int(m.lo)) { return }
            if wholeWord[p] && !Self.boundaryAfter(view, Int(m.hi)) { return }
            let c = Int(conceptOf[p])
            h.single |= 1 << UInt64(c)
            var recent = h.single & ~(1 << UInt64(c))
            while recent != 0 {
                let o = recent.trailingZeroBitCount
                recent &= recent - 1
                if m.hi - lastEnd[o] <= w { h.pairs[min(c, o)] |= 1 << UInt64(max(c, o)) }
            }
            lastEnd[c] = m.hi
        }
        return h
    }

    /// Calls `body(a, b)` for every feature of the hits: each concept present (a == b), then
    /// each close pair (a < b), in lexicon order.
    @inline(__always)
    func forEachFeature(_ h: Hits, _ body: (Int, Int) -> Void) {
        var single = h.single
        while single != 0 {
            let a = single.trailingZeroBitCount
            single &= single - 1
            body(a, a)
        }
        for a in names.indices {
            var row = h.pairs[a]
            while row != 0 {
                let b = row.trailingZeroBitCount
                row &= row - 1
                body(a, b)
            }
        }
    }

    /// Feature names of the hits ("ignore", "ignore+instr"), for the trainer.
    func featureNames(_ h: Hits) -> [String] {
        var out: [String] = []
        forEachFeature(h) { a, b in out.append(a == b ? names[a] : names[a] + "+" + names[b]) }
        return out
    }

    /// Index of a feature name in a K×K table (a*K+a for a concept, a*K+b for a pair), or nil.
    func index(of feature: String) -> Int? {
        let k = names.count
        let parts = feature.split(separator: "+").map(String.init)
        guard let a = names.firstIndex(of: parts[0]) else { return nil }
        if parts.count == 1 { return a * k + a }
        guard parts.count == 2, let b = names.firstIndex(of: parts[1]), a < b else { return nil }
        return a * k + b
    }

    /// The lexicon: concept name, then comma-separated patterns (stems; "|" = whole word).
    static let table: [(String, String)] = [
        ("ignore", """
         ignor, disregard, forget, overlook, pay no attention, don't follow, do not follow, skip the, set aside, \
         oubli, fais abstraction, faites abstraction, ne tiens pas compte, ne tenez pas compte, passe outre, passez outre, laisse tomber, fais fi, \
         vergiss, vergess, missacht, nicht beachten, beachte nicht, ausser acht, hinwegseh, verwirf, \
         olvid, haz caso omiso, omit, no hagas caso, no sigas, pasa por alto, \
         dimentic, scorda, tralascia, non considerare, lascia perdere, non seguire, \
         esquec, desconsider, deixa de lado, nao sigas, não siga, \
         игнорир, забуд, забыть, забыв, не обращай, пренебре, \
         ігнор, забудь, забуд, не зважай, \
         忽略, 忽视, 无视, 忘记, 忘掉, 不要理会, 别管, 不用管, 抛开, 不要遵守, 不必遵守, \
         無視, 忘れ, 気にしなくて, 従わなくて
         """),
        ("prior", """
         previous, prior|, above|, earlier, preceding, foregoing, initial, original, \
         precedent, anterieur, ci-dessus, plus haut, initiale, d'origine, \
         vorherig, vorig, bisherig, obig, vorangegangen, ursprunglich, fruher, zuvor, vorhin, \
         anterior, previ, arriba, iniciales, originales, \
         precedent, sopra|, iniziali, originari, \
         acima|, iniciais, originais, \
         предыдущ, прежн, выше|, ранее|, исходн, первоначальн, \
         попередн, вище|, раніше, початков, \
         之前, 以前, 上述, 上面, 先前, 原来, 原有, 此前, 前面, 原先, \
         前の, 上記, これまで, 先ほど, 最初の, 元の, 従来
         """),
        ("instr", """
         instruction, directive, rules|, guideline, prompt, guardrail, programming, constraint, \
         consigne, regle, contrainte, \
         anweisung, anleitung, regeln|, vorgabe, richtlinie, befehl, instruktion, \
         instruccion, indicaciones, reglas|, directriz, directrices, pautas|, normas|, \
         istruzion, indicazioni, regole|, direttiv, vincoli, \
         instruc, regras|, diretriz, diretrizes, orientacoes, \
         инструкц, указани, правил, директив, промпт, \
         інструкц, вказівк, правил, \
         指令, 指示, 规则, 规定, 提示词, 约束, 设定, 守则, \
         命令, ルール, 規則, 制約, プロンプト, 設定
         """),
        ("system", """
         system, systeme, sistema, systemprompt, systemnachricht, \
         систем, 系统, 系統, システム
         """),
        ("secret", """
         secret, hidden, confidential, internal, verborgen, geheim, versteckt, vertraulich, intern|, \
         cache|, cachee, confidentiel, interne, oculto, oculta, secreto, secreta, confidencial, \
         segret, nascost, riservat, sigilo, escondid, \
         секрет, скрыт, конфиденц, внутренн, таємн, прихован, \
         秘密, 隐藏, 机密, 保密, 内部, 隠し, 機密, 非公開
         """),
        ("reveal", """
         reveal, show me, print, output, display, repeat, disclose, leak, dump, spell out, verbatim, word for word, \
         revele, reveler, affiche, montre, repete, imprime, divulgue, mot pour mot, \
         zeig, verrat, gib aus, ausgeb, wiederhol, offenleg, wortlich, preisgeb, \
         revel, muestra, mostrar, imprim, repit, divulg, palabra por palabra, textualmente, \
         rivel, mostra, stampa, ripeti, parola per parola, \
         exib, repete, palavra por palavra, \
         покажи, выведи, раскрой, повтори, дословно, распечатай, \
         виведи, розкрий, дослівно, \
         显示, 输出, 透露, 泄露, 告诉我, 重复, 原文, 逐字, 打印, 公开, 展示, \
         表示, 出力, 教えて, 明かし, 繰り返, そのまま, 一字一句, 全文, 見せて, 開示
         """),
        ("henceforth", """
         from now on, starting now, henceforth, from this point, from here on, \
         a partir de maintenant, desormais, dorenavant, a partir d'ici, \
         ab jetzt, von nun an, ab sofort, ab hier, \
         a partir de ahora, de ahora en adelante, desde ahora, \
         d'ora in poi, da ora in poi, da adesso, d'ora in avanti, \
         a partir de agora, daqui em diante, de agora em diante, \
         отныне, с этого момента, теперь ты, \
         відтепер, з цього моменту, тепер ти, \
         从现在起, 从现在开始, 今后, 接下来你, 今から, これから, 以降
         """),
        ("persona", """
         you are now, act as, pretend, roleplay, role-play, role play, persona, in character, play the role, \
         tu es maintenant, agis comme, agissez comme, fais semblant, incarne, joue le role, \
         du bist jetzt, du bist nun, spiel die rolle, tu so als, gib dich als, verhalte dich wie, \
         ahora eres, actua como, finge, haz de|, interpreta, \
         ora sei, adesso sei, comportati come, fingi, \
         agora voce e, aja como, finja, faca de conta, \
         притворись, веди себя как, играй роль, \
         уяви, вдавай, поводься як, \
         扮演, 假装, 你现在是, 充当, 角色扮演, 演じ, ふりをし, なりきっ, として振る舞
         """),
        ("without", """
         without, no|, none|, free of, \
         sans|, aucun, aucune, \
         ohne|, kein, \
         sin|, ningun, \
         senza|, nessun, \
         sem|, nenhum, \
         без|, никаких, \
         без|, жодних, \
         没有, 不受, 无任何, 不带, \
         なし, 無し, ない, 抜き
         """),
        ("limit", """
         restrict, limit, filter, censor, boundar, guardrail, safety, safeguard, moderat, \
         restriction, limite, filtre, censure, \
         einschrank, grenze, filter, zensur, beschrank, \
         restriccion, limites, filtro, censura, \
         restrizion, limiti, filtri, \
         restric, limites, \
         ограничен, фильтр, цензур, \
         обмежен, фільтр, цензур, \
         限制, 过滤, 审查, 约束, 底线, 制限, 検閲, フィルター, 制約, 縛り
         """),
        ("jailbreak", """
         jailbreak, dan|, do anything now, uncensored, unfiltered, unrestricted, unlocked, \
         uneingeschrankt, unzensiert, ungefiltert, debride, \
         sin censura, sem censura, \
         взлом, джейлбрейк, \
         越狱, 破解版, 脱獄, 何でも答え, 何でも話
         """),
        ("mode", "mode|, modus, modo|, modalita, режим, 模式, モード"),
        ("privileged", """
         developer, admin, debug, sudo|, root|, god mode, maintenance, superuser, \
         developpeur, entwickler, desarrollador, sviluppatore, desenvolvedor, \
         разработчик, администратор, розробник, \
         开发者, 管理员, 调试, 開発者, 管理者, デバッグ
         """),
        ("override", """
         override, overwrite, supersede, replace, cancel, void|, invalid, null and void, revoke, obsolete, no longer apply, no longer valid, \
         remplac, annul, caduc, ne s'applique plus, ne sont plus valables, \
         ersetz, aufgehob, ungultig, nichtig, hinfallig, uberschreib, aufheb, gelten nicht mehr, \
         reemplaz, sustitu, anul, invalid, sin efecto, ya no aplica, ya no son validas, \
         sostitu, annull, non valgono piu, decadut, \
         substitu, revog, sem efeito, \
         отмен, замен, недействительн, больше не действ, \
         скасов, замін, недійсн, \
         作废, 取消, 覆盖, 替换, 失效, 无效, 不再适用, 不再有效, \
         無効, 取り消, 上書き, 置き換え, 撤回, 廃止
         """),
        ("you", """
         you|, your|, yourself, \
         tu|, toi|, ton|, tes|, vous|, votre|, \
         du|, dich|, dir|, dein, \
         eres|, usted, \
         ti|, tuo|, tua|, tuoi|, sei|, \
         voce|, \
         ты|, тебя|, тебе|, твой, твои, твоя, твое, \
         ти|, твій, твої, \
         你, 您, あなた, お前, おまえ, 君は
         """),
        ("ai", """
         ai|, a.i., assistant, chatbot, bot|, llm|, gpt, language model, \
         ia|, assistent, \
         ki|, sprachmodell, \
         asistente, modelo de lenguaje, \
         assistente, \
         ии|, ассистент, нейросет, асистент, \
         人工智能, 助手, 机器人, 大模型, 语言模型, アシスタント, 言語モデル, チャットボット
         """),
        ("reader", """
         reading this, if you are an, note to the, message to the, whoever reads, when you summari, when summari, \
         lisant ceci, si tu es une, si vous etes une, note pour l, note a l, \
         wenn du das liest, falls du eine, hinweis an, hinweis fur, \
         si eres una, si eres un, nota para, nota al, \
         se sei un, nota per, \
         se voce e, nota ao, \
         если ты, заметка для, \
         якщо ти, \
         如果你是, 读到这, 阅读此, 给ai, もしあなたが, 読んでいる
         """),
        ("process", """
         summari, translate, analy, review this, proofread, \
         resum, tradu, analys, \
         zusammenfass, ubersetz, analysier, \
         resumen, traduc, \
         riassum, traduci, \
         resumo, \
         резюм, перевед, кратко, \
         підсумуй, переклади, \
         总结, 摘要, 翻译, 概括, 要約, 翻訳, まとめ
         """),
        ("send", """
         send, forward, exfiltrat, upload, post it, email it, \
         envoie, envoyer, transmet, \
         schick, sende|, senden, weiterleit, \
         envia, enviar, reenvia, \
         invia, inoltra, \
         envie, encaminh, \
         отправ, перешли, надішли, \
         发送, 发给, 转发, 送信, 転送, 送って
         """),
        ("credential", """
         password, api key, credential, token, secret key, cookie, ssh key, private key, \
         mot de passe, identifiant, passwort, zugangsdaten, kennwort, \
         contrasena, credencial, clave api, \
         credenzial, chiave api, senha, \
         пароль, учетн, ключ api, \
         密码, 凭证, 密钥, パスワード, 認証情報, 秘密鍵
         """),
        ("harm", """
         bomb, explosive, weapon, malware, ransomware, keylogger, poison, meth|, methamphetamine, nerve agent, \
         bombe, explosif, arme|, armes|, poison, \
         sprengstoff, waffe, schadsoftware, \
         bomba, explosivo, arma|, armas|, veneno, \
         esplosiv, veleno, \
         бомб, взрывчат, оружи, яд|, \
         炸弹, 爆炸物, 武器, 毒药, 恶意软件, 爆弾, 爆発物, 毒物, マルウェア
         """),
        ("bypass", """
         bypass, circumvent, get around, evade, work around, \
         contourn, umgeh, eludi, sortear, aggir, elud, burlar, contorn, \
         обойти, обход, обійти, \
         绕过, 规避, 避开, 回避, 迂回, すり抜け, 突破
         """),
        ("real", """
         real task, actual task, true task, real instructions, actual instructions, \
         vraie tache, veritable, vraies instructions, \
         eigentliche, wirkliche aufgabe, echte aufgabe, \
         verdadera, tarea real, \
         vero compito, vera istruzione, vere istruzioni, \
         verdadeira, tarefa real, \
         настоящ, истинн, справжн, \
         真正的, 实际的任务, 本当の, 実際の
         """),
        ("test", "just a test, was a test, only a test, c'etait un test, war ein test, era una prueba, era un test, era uma prova, era um teste, это был тест, це був тест, 只是测试, 只是个测试, テストでした, ただのテスト"),
        ("obey", """
         obey, comply, do as i say, only listen, you must follow, \
         obei, obeis, \
         gehorch, befolg, \
         obedec, \
         obbedisc, \
         obedeca, obedece, \
         подчин, слушай только, выполняй, підкор, \
         服从, 听从, 遵从, 照我说, 従え, 従って, 言う通り
         """),
        ("authority", """
         authoriz, authoris, authority, official, administrator, management, security team, openai, anthropic, your creator, your developers, \
         autoris, autorit, officiel, direction|, \
         autorisiert, berechtigt, offiziell, geschaftsfuhrung, \
         autoriza, oficial, direccion|, \
         autorizz, ufficial, \
         autoriza, \
         авториз, официальн, руководств, офіційн, \
         授权, 官方, 管理层, 許可, 権限, 公式, 運営
         """),
        ("new", """
         new|, neue, neuer, neues, nouvelle, nouvelles, nouveau, nouveaux, nuevo, nuevas, nuevos, nueva, nuova, nuove, nuovo, nuovi, nova, novas, novo, novos, \
         нов, 新的, 新しい, 新たな
         """),
        ("only", """
         only|, nothing but, nothing else, \
         seulement, uniquement, rien d'autre, \
         nur|, nichts anderes, \
         solo|, solamente, unicamente, nada mas, \
         soltanto, nient'altro, \
         apenas, somente, nada alem, \
         только, лише, тільки, \
         只, 仅, だけ, のみ
         """),
        ("fiction", """
         hypothetic, fiction, story, imagine, novel|, screenplay, scene|, game|, \
         hypothetique, histoire, roman|, scenario, \
         hypothetisch, fiktiv, geschichte, stell dir vor, \
         hipotetic, ficcion, historia, imagina, novela, \
         ipotetic, finzione, storia, immagina, romanzo, \
         ficcao, \
         гипотетич, вымышл, истори, представь, \
         гіпотетич, вигадан, \
         假设, 虚构, 故事, 想象, 小说, 仮に, 架空, 物語, 想像, 小説
         """),
        ("refuse", """
         refus, decline, never say no, can't say no, \
         ablehn, verweiger, \
         rechaz, niegues, \
         rifiut, \
         recus, \
         отказ, відмов, \
         拒绝, 拒否, 断ら, 断って
         """),
        ("warn", """
         warning, disclaimer, caveat, \
         avertissement, mise en garde, \
         warnung, warnhinweis, \
         advertencia, aviso, \
         avvertenz, avvis, \
         предупрежд, попередж, \
         警告, 免责, 注意書き, 免責
         """),
        ("ethics", """
         ethic, moral, \
         ethique, ethik, etica, этик, мораль, етик, \
         道德, 伦理, 倫理, 道徳
         """),
        ("mine", """
         my|, mine|, \
         mon|, ma|, mes|, \
         mein, \
         mi|, mis|, \
         mio|, mia|, miei|, mie|, \
         meu|, minha, \
         мой|, моя|, моё|, мое|, мою|, мои|, мій|, моє|, \
         我的, 私の, 僕の, 俺の
         """),
        ("format", """
         tone|, style|, format, word limit, bullet, language|, units|, \
         ton|, stil|, formul, \
         estilo, tono|, \
         stile|, \
         тон|, стиль, формат, \
         语气, 格式, 风格, 口調, 形式, スタイル, 文体
         """),
        ("meta", """
         injection, phishing, attack, detect, example, security, awareness, red team, regex, classifier, \
         attaque, exemple, securite, sensibilisation, \
         angriff, beispiel, sicherheit, erkenn, \
         ataque, ejemplo, seguridad, detect, \
         attacco, esempio, sicurezza, rilev, \
         exemplo, seguranca, \
         атак, пример, безопасн, обнаруж, приклад, безпек, \
         攻击, 例子, 安全, 检测, 钓鱼, 注入, 攻撃, 例えば, セキュリティ, 検出, インジェクション, フィッシング
         """),
        ("report", """
         wrote, says|, said|, someone sent, received, got this, \
         a ecrit, dit|, recu, \
         schrieb, geschrieben, sagt|, erhalten, \
         escribio, dice|, recibi, \
         ha scritto, dice|, ricevut, \
         escreveu, recebi, \
         написал, пишет, получил, написав, отримав, \
         写道, 写着, 收到, と書い, 届いた, と言って
         """),
        ("respond", """
         answer, respond, reply, \
         reponds, repondez, reponse, \
         antwort, \
         responde, respuesta, \
         rispondi, risposta, \
         responda, resposta, \
         ответ, відпов, \
         回答, 回复, 答え, 返答, 返事
         """),
        ("all", """
         all|, every, everything, \
         toutes, tous|, tout|, \
         alle|, alles, \
         todas, todos, todo|, \
         tutte, tutti, tutto, \
         все|, всё|, всех, усі, все|, \
         所有, 全部, 一切, すべて, 全て
         """),
    ]
}
