import Foundation

/// Line/area charts as inline SVG, rendered on the server (no script, no external library).
/// ``LineChart`` turns series of (time, value) points into plain geometry — polyline points,
/// axis ticks and labels — that the `chart` template draws; every text goes through the
/// template's HTML escaping.
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(t: Int64, v: Double?)]
        public init(name: String, points: [(t: Int64, v: Double?)]) { self.name = name; self.points = points }
    }

    public var title: String
    public var unit: String
    public var from: Int64
    public var to: Int64
    public var series: [Series]
    public var width = 640.0, height = 220.0
    let left = 56.0, right = 16.0, top = 26.0, bottom = 28.0

    public init(title: String, unit: String, from: Int64, to: Int64, series: [Series]) {
        self.title = title; self.unit = unit; self.from = from; self.to = to; self.series = series
    }

    /// The smallest "nice" number (1, 2 or 5 × 10ⁿ) at least `x`: the step of the value axis.
    static func niceStep(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 1 }
        let p = pow(10, floor(log10(x)))
        for m in [1.0, 2.0, 5.0, 10.0] where m * p >= x { return m * p }
        return 10 * p
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 100 || v == v.rounded() { return String(Int(v.rounded())) }
        if abs(v) >= 1 { return String(format: "%.1f", v) }
        return String(format: "%.2f", v)
    }

    /// Time labels (UTC): hours for a day or less, dates beyond.
    static func timeLabel(_ ms: Int64, span: Int64) -> String {
        let f = DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = span > 86_400_000 ? "MM-dd HH:mm" : "HH:mm"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// What the `chart` template renders.
    public var view: ChartView {
        let values = series.flatMap { $0.points.compactMap(\.v) }
        let maxValue = values.max() ?? 0
        let step = Self.niceStep(maxValue / 4)
        let yMax = max(step * 4, step * ceil(maxValue / step))
        let plotW = width - left - right, plotH = height - top - bottom
        let span = max(1, to - from)
        func x(_ t: Int64) -> Double { left + plotW * Double(t - from) / Double(span) }
        func y(_ v: Double) -> Double { top + plotH * (1 - v / yMax) }
        func fmt(_ d: Double) -> String { String(format: "%.1f", d) }

        var yTicks: [ChartView.Tick] = []
        var v = 0.0
        while v <= yMax + step / 2 {
            yTicks.append(.init(x: fmt(left - 6), y: fmt(y(v)), x2: fmt(width - right), label: Self.label(v)))
            v += step
        }
        let xTicks: [ChartView.Tick] = (0...4).map { i in
            let t = from + span * Int64(i) / 4
            return .init(x: fmt(x(t)), y: fmt(height - bottom + 16), x2: fmt(x(t)), label: Self.timeLabel(t, span: span))
        }
        let lines: [ChartView.Line] = series.enumerated().map { i, s in
            // A gap (no request in a bucket) splits the line: nothing is invented between points.
            var segments: [[String]] = [[]]
            for p in s.points {
                if let v = p.v { segments[segments.count - 1].append("\(fmt(x(p.t))),\(fmt(y(v)))") }
                else if !(segments.last ?? []).isEmpty { segments.append([]) }
            }
            let kept = segments.filter { !$0.isEmpty }
            let last = s.points.last(where: { $0.v != nil })?.v
            return ChartView.Line(name: s.name, cssClass: "s\(i % 6)",
                                  segments: kept.map { seg in
                                      let baseline = fmt(y(0))
                                      let firstX = seg.first!.split(separator: ",")[0], lastX = seg.last!.split(separator: ",")[0]
                                      return .init(points: seg.joined(separator: " "),
                                                   area: i == 0 ? "\(firstX),\(baseline) " + seg.joined(separator: " ") + " \(lastX),\(baseline)" : nil,
                                                   dots: seg.count == 1 ? seg.map { pt in
                                                       let xy = pt.split(separator: ",")
                                                       return ChartView.Dot(cx: String(xy[0]), cy: String(xy[1]))
                                                   } : [])
                                  },
                                  latest: last.map { Self.label($0) + " " + unit } ?? "no data")
        }
        let summary = series.map { s -> String in
            let vs = s.points.compactMap(\.v)
            guard let mx = vs.max() else { return "\(s.name): no data" }
            return "\(s.name): max \(Self.label(mx)) \(unit), last \(Self.label(vs.last ?? 0)) \(unit)"
        }.joined(separator: "; ")
        return ChartView(id: "chart-" + String(title.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }), title: title, description: summary.isEmpty ? "no data" : summary, width: fmt(width), height: fmt(height),
                         axisX: fmt(left), axisY: fmt(height - bottom), axisRight: fmt(width - right), axisTop: fmt(top), unit: unit,
                         yTicks: yTicks, xTicks: xTicks, lines: lines, empty: values.isEmpty)
    }
}

/// The geometry of one chart, as the `chart` template reads it (all numbers pre-formatted).
public struct ChartView: Sendable {
    public struct Tick: Sendable { public let x, y, x2, label: String }
    public struct Dot: Sendable { public let cx, cy: String }
    public struct Segment: Sendable { public let points: String; public let area: String?; public let dots: [Dot] }
    public struct Line: Sendable { public let name, cssClass: String; public let segments: [Segment]; public let latest: String }
    /// An id for `aria-labelledby`, from the title (letters and digits kept).
    public let id: String
    public let title, description, width, height: String
    public let axisX, axisY, axisRight, axisTop, unit: String
    public let yTicks: [Tick]
    public let xTicks: [Tick]
    public let lines: [Line]
    public let empty: Bool
}
