#!/usr/bin/python3
"""Regenerates the seed corpus of fuzz_rewrite (tests/fuzz/corpus/rewrite/case-*) from the case
table: one seed per case, its first byte encoding the case's options the way fuzz_rewrite.c
reads them, plus variants under other options. Seeds found by fuzzing (other file names) are
left alone. Usage: tests/data/rewrite/make_corpus.py (from anywhere)."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus", "rewrite")

MACROS = {
    "{R}": "arn:aws:iam::123456789012:role/FuzzInjected",
    "{T}": "s3://rsproxy-test/fuzz/",
    "{S}": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def unescape(text):
    def rep(m):
        e = m.group(1)
        if e.startswith("x"):
            return chr(int(e[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t"}.get(e, e)
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)", rep, text)


def cases(path):
    name, opts, block, lines, escaped = None, "", None, [], False
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.startswith("@@"):
            if block == "in":
                text = "\n".join(lines)
                for k, v in MACROS.items():
                    text = text.replace(k, v)
                yield name, opts, unescape(text) if escaped else text
            block = None
            d = line[3:]
            if d.startswith("case "):
                name, opts = d[5:], ""
            elif d.startswith("opts "):
                opts = d[5:]
            elif d in ("in", "in-escaped"):
                block, lines, escaped = "in", [], d == "in-escaped"
            continue
        if block:
            lines.append(line)


def selector(opts):
    sel = 4  # tempdir set, as in the table's defaults
    for kv in opts.split():
        k, _, v = kv.partition("=")
        if k == "role" and v == "default":
            sel = (sel & ~3) | 1
        elif k == "role" and "," in v:
            sel = (sel & ~3) | 2
        elif k == "forward":
            sel |= 3
        elif k == "tempdir" and not v:
            sel &= ~4
        elif k == "allowed" and v:
            sel |= 8
        elif k == "clientcreds" and v == "no":
            sel |= 16
        elif k == "limit":
            sel |= 32
        elif k == "region" and v:
            sel |= 0x40  # a tempdir_region (0x40 without 0x80: see fuzz_rewrite.c)
    return sel


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("case-"):
            os.unlink(os.path.join(OUT, f))
    n = 0
    for name, opts, text in cases(os.path.join(HERE, "cases.txt")):
        body = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        base = selector(opts)
        for variant, sel in (("", base), ("-policy", base | 8 | 16), ("-keys", base | 3)):
            with open(os.path.join(OUT, "case-%s%s" % (name, variant)), "wb") as fh:
                fh.write(bytes([sel]) + body)
            n += 1
    print("wrote %d seeds to %s" % (n, OUT))


if __name__ == "__main__":
    main()
