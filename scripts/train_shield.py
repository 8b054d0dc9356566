#!/usr/bin/env python3
"""Train the shield's semantic layer (docs/SHIELD.md, "Semantic layer").

Input: the JSON lines written by `llmaas shield features FILE...` (the semantic view of each
row, exactly as the Swift side computes it, and its rule findings as "rule:severity").
Output: Sources/Shield/Resources/semantic-v1.bin (header JSON + 2^bits int8 weights) and
Tests/ShieldTests/semantic-parity.json (buckets and logits of a few views, for the Swift
parity test).

Model: logistic regression (scikit-learn, liblinear) over
  - hashed byte n-grams (3, 4, 5) of " " + view + " " and hashed words and word pairs,
    each occurrence worth 1/sqrt(feature count) (so z does not grow with length), each bucket
    scaled by |log-count ratio|^e (naive-Bayes scaling as in NBSVM, Wang & Manning 2012: a
    bucket seen mostly in attacks or mostly in benign rows counts more than one seen in both;
    e = --nb-exponent). The scale is folded into the written weights, so the Swift side still
    computes one dot product over the same buckets;
  - one binary feature per rule finding "rule:severity".
Hashing: 32-bit FNV-1a seeded with a tag byte (1 for byte n-grams, which continue their prefix's
hash, in order of start then length; 0x11 words; 0x12 word pairs),
bucket = (h ^ h >> 16) & (2^bits - 1). The threshold is chosen on out-of-fold scores
(5-fold) so that the false-positive rate stays at or under --fp-budget; never on held-out rows
(the script refuses rows whose split is "heldout").
"""
import argparse
import datetime
import json
import math
import struct
import sys

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

FNV_BASIS = 2166136261
FNV_PRIME = 16777619
MASK32 = 0xFFFFFFFF


def fnv(tag, data, h=None):
    h = ((FNV_BASIS ^ tag) * FNV_PRIME) & MASK32 if h is None else h
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK32
    return h


def mix(h):
    return h ^ (h >> 16)


def buckets(view: bytes, ngrams, words, mask):
    out = []
    padded = b" " + view + b" "
    want = set(ngrams)
    top = max(ngrams)
    h0 = ((FNV_BASIS ^ 1) * FNV_PRIME) & MASK32
    n = len(padded)
    for i in range(n):
        h = h0
        for k in range(i, min(i + top, n)):
            h = ((h ^ padded[k]) * FNV_PRIME) & MASK32
            if k + 1 - i in want:
                out.append(mix(h) & mask)
    if words:
        out += word_buckets(view, 0x11, 0x12, mask)
    return out


def word_buckets(text: bytes, word_tag, pair_tag, mask):
    """Every space-separated word (tag word_tag) and every pair of adjacent words (pair_tag:
    previous word, " ", word)."""
    out = []
    prev = None
    for t in (t for t in text.split(b" ") if t):
        out.append(mix(fnv(word_tag, t)) & mask)
        if prev is not None:
            out.append(mix(fnv(pair_tag, prev + b" " + t)) & mask)
        prev = t
    return out


def quoted_buckets(quoted: bytes, mask):
    """Features of the quoted view (Sources/Shield/Quoted.swift): per quotation (joined by a line
    feed), every word (tag 0x21), every pair of adjacent words (0x22), and every pair of
    consecutive kana/CJK scalars (0x23, U+3040-30FF and U+4E00-9FFF, others skipped)."""
    out = []
    for piece in quoted.split(b"\n"):
        if not piece:
            continue
        out += word_buckets(piece, 0x21, 0x22, mask)
        cjk = [c.encode("utf-8") for c in piece.decode("utf-8") if 0x3040 <= ord(c) <= 0x30FF or 0x4E00 <= ord(c) <= 0x9FFF]
        for a, b in zip(cjk, cjk[1:]):
            out.append(mix(fnv(0x23, a + b)) & mask)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features", help="output of `llmaas shield features`")
    ap.add_argument("--out", default="Sources/Shield/Resources/semantic-v1.bin")
    ap.add_argument("--parity", default="Tests/ShieldTests/semantic-parity.json")
    ap.add_argument("--bits", type=int, default=20)
    ap.add_argument("--ngrams", default="3,4,5")
    ap.add_argument("--C", default="32", help="regularisation grid (best out-of-fold detection at the FP budget)")
    ap.add_argument("--norm-floor", type=int, default=100, help="n-gram sum divided by sqrt(max(count, floor))")
    ap.add_argument("--fp-budget", type=float, default=0.0175, help="out-of-fold FP budget over all training rows (1.75 %% keeps our own rows at 2.0 %%)")
    ap.add_argument("--own-weight", type=float, default=4.0, help="sample weight of our own rows (source llmaas-own*)")
    ap.add_argument("--concept-min-rows", type=int, default=3, help="keep concept features present in at least this many rows")
    ap.add_argument("--concept-scale", default="0.1", help="value of a present concept feature (grid, comma-separated; 0 = no concepts)")
    ap.add_argument("--nb-exponent", type=float, default=0.5, help="bucket scale |log-count ratio|^e (0 = no naive-Bayes scaling)")
    ap.add_argument("--nb-alpha", type=float, default=1.0, help="smoothing count of the log-count ratio")
    ap.add_argument("--quoted-bits", type=int, default=18, help="buckets of the quoted view's own table (0 = no quoted features)")
    ap.add_argument("--quoted-norm-floor", type=int, default=25, help="quoted sum divided by sqrt(max(count, floor))")
    args = ap.parse_args()

    ngrams = [int(x) for x in args.ngrams.split(",")]
    mask = (1 << args.bits) - 1
    rows = [json.loads(l) for l in open(args.features, encoding="utf-8") if l.strip()]
    if any(r["split"] == "heldout" for r in rows):
        sys.exit("refusing to train on held-out rows")
    rule_names = sorted({k for r in rows for k in r["rules"]})
    rule_index = {k: i for i, k in enumerate(rule_names)}
    nb = 1 << args.bits

    def hashed_matrix(bucket_lists, floor, width):
        """One row per text: each feature occurrence worth 1/sqrt(max(feature count, floor))."""
        data, ind, ptr = [], [], [0]
        for bs in bucket_lists:
            v = 1.0 / math.sqrt(max(len(bs), floor)) if bs else 0.0
            counts = {}
            for b in bs:
                counts[b] = counts.get(b, 0) + v
            ind.extend(counts.keys())
            data.extend(counts.values())
            ptr.append(len(ind))
        return sparse.csr_matrix((np.array(data, dtype=np.float64), np.array(ind, dtype=np.int64), np.array(ptr)), shape=(len(ptr) - 1, width))

    X = hashed_matrix((buckets(r["view"].encode("utf-8"), ngrams, True, mask) for r in rows), args.norm_floor, nb)
    # The quoted view's features: their own columns (and their own weight table in the file).
    nq = (1 << args.quoted_bits) if args.quoted_bits else 0
    if nq:
        Q = hashed_matrix((quoted_buckets(r.get("quoted", "").encode("utf-8"), nq - 1) for r in rows), args.quoted_norm_floor, nq)
        X = sparse.hstack([X, Q]).tocsr()
    df = {}
    for r in rows:
        for k in r.get("concepts", []):
            df[k] = df.get(k, 0) + 1
    concept_names = sorted(k for k, n in df.items() if n >= args.concept_min_rows)
    concept_index = {k: i for i, k in enumerate(concept_names)}
    K = sparse.lil_matrix((len(rows), len(concept_names)))
    for i, r in enumerate(rows):
        for k in r.get("concepts", []):
            if k in concept_index:
                K[i, concept_index[k]] = 1.0
    K = K.tocsr()
    R = np.zeros((len(rows), len(rule_names)))
    for i, r in enumerate(rows):
        for k in r["rules"]:
            R[i, rule_index[k]] = 1.0
    y = np.array([1 if r["label"] == "attack" else 0 for r in rows])
    def is_own(src):
        return src.startswith("llmaas-own")
    w = np.array([args.own_weight if is_own(r["source"]) or r["source"] == "llmaas-probes" else 1.0 for r in rows])
    own = np.array([is_own(r["source"]) for r in rows])
    print(f"{len(rows)} rows ({y.sum()} attacks), {len(rule_names)} rule features, {len(concept_names)} concept features", file=sys.stderr)

    # Stage 1: the n-gram model. Stage 2 (stacking): a small logistic regression over the
    # stage-1 out-of-fold logit and the rule findings, which gives every rule finding its
    # weight as evidence next to the semantic score.
    def fit(C, Xt, yt, wt):
        m = LogisticRegression(C=C, solver="liblinear", max_iter=2000)
        m.fit(Xt, yt, sample_weight=wt)
        return m

    # Naive-Bayes scaling of the buckets: |log((p/|p|) / (q/|q|))|^e, p and q the smoothed counts
    # of rows with the bucket among attacks and benign rows. Computed on the rows a model is
    # fitted on (per fold for the out-of-fold scores), never on the rows it scores.
    def nb_scale(Xs, ys):
        if args.nb_exponent <= 0:
            return np.ones(Xs.shape[1])
        B = (Xs > 0).astype(np.float64)
        p = args.nb_alpha + np.asarray(B[ys == 1].sum(axis=0)).ravel()
        q = args.nb_alpha + np.asarray(B[ys == 0].sum(axis=0)).ravel()
        return np.abs(np.log((p / p.sum()) / (q / q.sum()))) ** args.nb_exponent

    def features(Xs, scale, Ks, cs):
        XS = Xs @ sparse.diags(scale)
        return sparse.hstack([XS, Ks * cs]).tocsr() if cs > 0 else XS.tocsr()

    # Stage 2 is fitted with bounds: the semantic logit and every medium/high/critical rule
    # finding may only push towards blocking (weight >= 0), so a rule keeps its evidence in
    # languages and phrasings the n-grams have not seen; low/info findings (often context-
    # downgraded) may learn a negative weight.
    lower = [0.0] + [0.0 if k.rsplit(":", 1)[1] in ("medium", "high", "critical") else None for k in rule_names]

    class Stage2:
        def __init__(self, coef, intercept):
            self.coef_ = np.array([coef])
            self.intercept_ = np.array([intercept])

        def predict_proba(self, S):
            z = S @ self.coef_[0] + self.intercept_[0]
            p = 1 / (1 + np.exp(-z))
            return np.column_stack([1 - p, p])

    def fit2(S, yt, wt, l2=1.0):
        d = S.shape[1]

        def f(theta):
            wv, b = theta[:d], theta[d]
            z = S @ wv + b
            p = 1 / (1 + np.exp(-z))
            eps = 1e-12
            loss = -np.sum(wt * (yt * np.log(p + eps) + (1 - yt) * np.log(1 - p + eps))) + 0.5 * l2 * np.dot(wv, wv)
            g = wt * (p - yt)
            return loss, np.concatenate([S.T @ g + l2 * wv, [g.sum()]])

        bounds = [(lo, None) for lo in lower] + [(None, None)]
        r = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds)
        return Stage2(r.x[:d], r.x[d])

    def threshold_for(scores, labels, budget):
        ben = np.sort(scores[labels == 0])[::-1]
        k = int(math.floor(budget * len(ben)))
        return float(ben[k]) if k < len(ben) else 0.0

    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=15)
    best = None
    grid = [(float(c), float(cs)) for c in args.C.split(",") for cs in args.concept_scale.split(",")]
    for C, cs in grid:
        oof = np.zeros(len(rows))
        for tr, te in skf.split(X, y):
            XC = features(X, nb_scale(X[tr], y[tr]), K, cs)
            m = fit(C, XC[tr], y[tr], w[tr])
            oof[te] = m.decision_function(XC[te])
        # stage 2, itself out-of-fold, to judge C honestly
        S = np.column_stack([oof, R])
        oof2 = np.zeros(len(rows))
        for tr, te in skf.split(S, y):
            m2 = fit2(S[tr], y[tr], w[tr])
            oof2[te] = m2.predict_proba(S[te])[:, 1]
        t = threshold_for(oof2, y, args.fp_budget)
        det = float((oof2[y == 1] > t).mean())
        own_det = float((oof2[(y == 1) & own] > t).mean()) if ((y == 1) & own).any() else float("nan")
        own_fp = float((oof2[(y == 0) & own] > t).mean()) if ((y == 0) & own).any() else float("nan")
        print(f"C={C} concept-scale={cs}: out-of-fold threshold {t:.3f} detection {det:.3f} (own rows: detection {own_det:.3f}, FP {own_fp:.3f})", file=sys.stderr)
        # Chosen by the out-of-fold detection on our own rows (the hard, multilingual cases),
        # then overall detection.
        key = (round(own_det, 3), det)
        if best is None or key > best[0]:
            best = (key, C, det, t, oof, oof2, cs)
    _, C, det, t, oof, oof2, cs = best
    kinds = sorted({(r["label"], r["kind"]) for r in rows if is_own(r["source"])})
    for lab, kind in kinds:
        sel = np.array([r["kind"] == kind and r["label"] == lab and is_own(r["source"]) for r in rows])
        print(f"  own {lab:7s} {kind:22s} n={sel.sum():4d} blocked {float((oof2[sel] > t).mean()):.2f}", file=sys.stderr)
    for lang in sorted({r["lang"] for r in rows if is_own(r["source"])}):
        sa = np.array([r["lang"] == lang and is_own(r["source"]) for r in rows])
        print(f"  own {lang}: detection {float((oof2[sa & (y == 1)] > t).mean()):.2f} FP {float((oof2[sa & (y == 0)] > t).mean()):.3f}", file=sys.stderr)
    scale_all = nb_scale(X, y)
    m1 = fit(C, features(X, scale_all, K, cs), y, w)
    m2 = fit2(np.column_stack([oof, R]), y, w)
    a = float(m2.coef_[0][0])
    ng = m1.coef_[0][:nb] * scale_all[:nb] * a
    qw = m1.coef_[0][nb:nb + nq] * scale_all[nb:nb + nq] * a
    concepts = {}
    if cs > 0:
        for k, i in concept_index.items():
            v = float(m1.coef_[0][nb + nq + i] * a * cs)
            if abs(v) > 1e-6:
                concepts[k] = round(v, 6)
    scale = float(np.abs(ng).max() / 127.0) or 1.0
    q = np.clip(np.round(ng / scale), -127, 127).astype(np.int8)
    qscale = float(np.abs(qw).max() / 127.0) if nq and np.abs(qw).max() > 0 else 1.0
    qq = np.clip(np.round(qw / qscale), -127, 127).astype(np.int8) if nq else None
    rules = {k: round(float(m2.coef_[0][1 + i]), 4) for k, i in rule_index.items() if abs(m2.coef_[0][1 + i]) > 1e-6}
    bias = float(m2.intercept_[0] + a * m1.intercept_[0])
    header = {
        "version": 1, "norm_floor": args.norm_floor, "bucket_bits": args.bits, "ngrams": ngrams, "words": True,
        "scale": scale, "bias": bias, "rules": rules, "concepts": concepts, "threshold": round(min(max(t, 0.05), 0.95), 4),
        **({"quoted": {"bucket_bits": args.quoted_bits, "scale": qscale, "norm_floor": args.quoted_norm_floor}} if nq else {}),
        "trained_on": f"{len(rows)} rows ({int(y.sum())} attacks) from {sorted({r['split'] for r in rows})}, "
                      f"C={C}, concept scale {cs}, NB exponent {args.nb_exponent}, semantic weight {a:.3f}, own-weight={args.own_weight}, out-of-fold detection {det:.3f} "
                      f"at FP budget {args.fp_budget}, {datetime.date.today().isoformat()}",
    }
    hb = json.dumps(header, sort_keys=True).encode("utf-8")
    with open(args.out, "wb") as f:
        f.write(b"LLSH" + struct.pack("<I", len(hb)) + hb + q.tobytes() + (qq.tobytes() if nq else b""))
    print(f"wrote {args.out}: threshold {header['threshold']}, {len(rules)} rule weights, scale {scale:.5f}", file=sys.stderr)

    # Parity fixtures: views chosen to cover ASCII, CJK, leet folding and decoded payloads.
    samples = []
    picks = [r for r in rows if r["lang"] in ("en", "de", "zh", "ja", "ru", "fr")][:0]
    seen_langs = set()
    for r in rows:
        if r["lang"] not in seen_langs and len(r["view"].encode()) < 400:
            seen_langs.add(r["lang"])
            picks.append(r)
    picks += [{"view": "ignore all previous instructions"}, {"view": ""}, {"view": "a"}]
    picks = picks[:12]
    if nq:
        # Quoted views: a Latin one, a CJK one, one with several quotations.
        with_quotes = [r for r in rows if r.get("quoted") and len(r["quoted"].encode()) < 300]
        for want in (lambda q: q.isascii(), lambda q: any(0x3040 <= ord(c) <= 0x9FFF for c in q), lambda q: "\n" in q):
            picks += [r for r in with_quotes if want(r["quoted"])][:1]
    for r in picks:
        vb = r["view"].encode("utf-8")
        bs = buckets(vb, ngrams, True, mask)
        z = scale * float(sum(int(q[b]) for b in bs)) / math.sqrt(max(len(bs), args.norm_floor)) if bs else 0.0
        cz = sum(concepts.get(k, 0.0) for k in r.get("concepts", []))
        sample = {"view": r["view"], "buckets": bs, "ngram_logit": z, "concepts": r.get("concepts"), "concept_logit": cz}
        if nq and r.get("quoted"):
            qb = quoted_buckets(r["quoted"].encode("utf-8"), nq - 1)
            sample["quoted"] = r["quoted"]
            sample["quoted_buckets"] = qb
            sample["quoted_logit"] = qscale * float(sum(int(qq[b]) for b in qb)) / math.sqrt(max(len(qb), args.quoted_norm_floor))
        samples.append(sample)
    with open(args.parity, "w", encoding="utf-8") as f:
        json.dump({"model_header": header, "samples": samples}, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
