"""WordPiece tokenizer for neuroradiology reports: learnt from the report corpus, saved as a Hugging Face
tokenizer.json, and applied here exactly as @huggingface/tokenizers applies it on the TypeScript side
(test/models/tokenizer-parity.test.ts holds the two equal on a fixed sentence set).

Normaliser: BERT (clean text, lowercase, then strip accents by NFD + dropping Mn marks, the order tokenizers.js
uses). Pre-tokeniser: BERT (whitespace split, each punctuation character its own word). Model: WordPiece with
"##" continuation, greedy longest match, [UNK] for a word that cannot be spelt. Post-processor: [CLS] A [SEP].
Truncation (not part of tokenizer.json, which tokenizers.js ignores for it): keep the first maxLength-1 ids and
end with [SEP]; shared/models/tokenizer.ts does the same.

CLI: python3 nt_tokenizer.py encode TOKENIZER_JSON MAX_LEN < sentences.json > ids.json
     python3 nt_tokenizer.py train VOCAB_SIZE OUT_TOKENIZER_JSON < corpus.json
"""
import collections
import json
import re
import sys
import unicodedata

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


_WS = re.compile(r"\s")


def normalize(text):
    out = []
    for ch in text:
        if ord(ch) == 0 or ord(ch) == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _WS.match(ch) else ch)
    text = "".join(out).lower()
    text = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def pre_tokenize(text):
    words, cur = [], []
    for ch in text.strip():
        if _WS.match(ch):
            if cur:
                words.append("".join(cur))
                cur = []
        elif _is_punct(ch):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


def train_wordpiece(texts, vocab_size=6000, min_frequency=2):
    """BPE-style merges with "##" continuation (what Hugging Face's WordPieceTrainer does), plus the printable
    ASCII alphabet so unseen words (held-out phrasings) are spelt out rather than mapped to [UNK]."""
    counts = collections.Counter()
    for t in texts:
        counts.update(pre_tokenize(normalize(t)))
    alphabet = set(chr(c) for c in range(33, 127) if not ("A" <= chr(c) <= "Z"))
    for w in counts:
        alphabet.update(w)
    vocab = list(SPECIALS)
    seen = set(vocab)
    for ch in sorted(alphabet):
        for tok in (ch, "##" + ch):
            if tok not in seen:
                vocab.append(tok)
                seen.add(tok)
    words = {w: [w[0]] + ["##" + c for c in w[1:]] for w in counts}
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for w, pieces in words.items():
            c = counts[w]
            for i in range(len(pieces) - 1):
                pairs[(pieces[i], pieces[i + 1])] += c
        if not pairs:
            break
        (a, b), freq = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if freq < min_frequency:
            break
        merged = a + b[2:]
        if merged not in seen:
            vocab.append(merged)
            seen.add(merged)
        for w, pieces in words.items():
            if len(pieces) < 2:
                continue
            i, out = 0, []
            while i < len(pieces):
                if i < len(pieces) - 1 and pieces[i] == a and pieces[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(pieces[i])
                    i += 1
            words[w] = out
    return vocab


def tokenizer_json(vocab):
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, t in enumerate(SPECIALS)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": True, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [CLS], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [SEP], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                  "vocab": {t: i for i, t in enumerate(vocab)}},
    }


class Tokenizer:
    def __init__(self, vocab):
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.size = len(vocab)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            v = json.load(f)["model"]["vocab"]
        return cls([t for t, _ in sorted(v.items(), key=lambda kv: kv[1])])

    def _word(self, word):
        chars = list(word)
        if len(chars) > 100:
            return [UNK]
        out, start = [], 0
        while start < len(chars):
            end, cur = len(chars), None
            while start < end:
                sub = "".join(chars[start:end])
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    cur = self.vocab[sub]
                    break
                end -= 1
            if cur is None:
                return [UNK]
            out.append(cur)
            start = end
        return out

    def encode(self, text, max_len):
        ids = [CLS]
        for w in pre_tokenize(normalize(text)):
            ids.extend(self._word(w))
        ids.append(SEP)
        if len(ids) > max_len:
            ids = ids[: max_len - 1] + [SEP]
        return ids


def main(argv):
    if len(argv) == 4 and argv[1] == "encode":
        tok = Tokenizer.load(argv[2])
        sentences = json.load(sys.stdin)
        json.dump([tok.encode(s, int(argv[3])) for s in sentences], sys.stdout)
        return 0
    if len(argv) == 4 and argv[1] == "train":
        vocab = train_wordpiece(json.load(sys.stdin), int(argv[2]))
        with open(argv[3], "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(vocab), f, ensure_ascii=False)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
