#!/usr/bin/env python3
"""Independent cross-check of pipeline/tokenizer on the vocabularies without
upstream expected outputs.

    go test -run TestFamiliesGolden -dump /tmp/xc ./pipeline/tokenizer
    python3 pipeline/tokenizer/testdata/crosscheck.py /tmp/xc

It re-implements, separately from the Go code, the rules llama.cpp applies: each
family's split regexes run with the `regex` module over real Unicode properties
(not llama.cpp's collapsed text, nor our hand scanners), the textbook GPT-2 BPE
loop (merge every occurrence of the best-ranked pair, repeat), and a naive
O(n^2) SentencePiece merge (best score, leftmost). It reports every text on
which the Go ids differ.
"""
import json
import math
import pathlib
import sys

import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
RULES = {
    "gpt-2": [GPT2],
    "mpt": [GPT2],
    "starcoder": [r"\p{N}", GPT2],
    "refact": [r"\p{N}", GPT2],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    "deepseek-coder": ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", r"\p{N}"],
}


def byte_alphabet():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


B2U = byte_alphabet()


def split(text, exprs):
    chunks = [text]
    for e in exprs:
        out = []
        for c in chunks:
            last = 0
            for m in regex.finditer(e, c):
                if m.start() > last:
                    out.append(c[last:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                last = m.end()
            if last < len(c):
                out.append(c[last:])
        chunks = out
    return chunks


def bpe(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        best, pair = math.inf, None
        for a, b in zip(parts, parts[1:]):
            r = ranks.get((a, b), math.inf)
            if r < best:
                best, pair = r, (a, b)
        if pair is None:
            break
        merged, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def partition(text, specials):
    """Split out user-defined tokens, longest first."""
    frags = [(None, text)]
    for tok, tid in specials:
        out = []
        for sid, s in frags:
            if sid is not None:
                out.append((sid, s))
                continue
            pieces = s.split(tok)
            for i, p in enumerate(pieces):
                if i:
                    out.append((tid, tok))
                if p:
                    out.append((None, p))
        frags = out
    return frags


def encode_bpe(v, text, ranks, vocab, specials):
    ids = []
    for sid, s in partition(text, specials):
        if sid is not None:
            ids.append(sid)
            continue
        for piece in split(s, RULES[v["name"]]):
            word = "".join(B2U[b] for b in piece.encode("utf-8"))
            ids.extend(vocab[p] for p in bpe(word, ranks))
    return ids


def encode_spm(text, vocab, scores):
    if not text:
        return []
    data = (" " + text).replace(" ", "\u2581").encode("utf-8")
    syms, i = [], 0
    while i < len(data):
        n = {0xC: 2, 0xD: 2, 0xE: 3, 0xF: 4}.get(data[i] >> 4, 1)
        syms.append(data[i:i + n])
        i += n
    while True:
        best, at = None, -1
        for i in range(len(syms) - 1):
            tid = vocab.get(syms[i] + syms[i + 1])
            if tid is not None and (best is None or scores[tid] > best):
                best, at = scores[tid], i
        if at < 0:
            break
        syms[at:at + 2] = [syms[at] + syms[at + 1]]
    ids = []
    for s in syms:
        if s in vocab:
            ids.append(vocab[s])
        else:
            ids.extend(vocab["<0x%02X>" % b] for b in s)
    return ids


def main(d):
    bad = 0
    for path in sorted(pathlib.Path(d).glob("*.json")):
        v = json.loads(path.read_text())
        if v["kind"] == "bpe":
            vocab = {t: i for i, t in enumerate(v["tokens"])}
            ranks = {}
            for r, m in enumerate(v["merges"]):
                a, b = m.split(" ", 1)
                ranks.setdefault((a, b), r)
            specials = sorted(((t, i) for i, t in enumerate(v["tokens"]) if v["types"][i] == 4),
                              key=lambda x: -len(x[0]))
            enc = lambda s: encode_bpe(v, s, ranks, vocab, specials)
        else:
            vocab = {}
            for i, t in enumerate(v["tokens"]):
                key = t.encode("utf-8") if v["types"][i] != 6 else t
                vocab.setdefault(key, i)
            enc = lambda s: encode_spm(s, vocab, v["scores"])
        agree = 0
        for text, want in zip(v["texts"], v["ids"]):
            got = enc(text)
            if got == (want or []):
                agree += 1
            else:
                bad += 1
                print(f"{v['name']}: {text!r}\n  go     {want}\n  python {got}")
        print(f"{v['name']}: {agree}/{len(v['texts'])} agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/xc"))
