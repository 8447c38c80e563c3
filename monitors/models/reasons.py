"""Reason codes: an online text classifier for untagged notes, and off-taxonomy clusters.

Deals whose tag maps cleanly to a bucket (``config/taxonomy.yaml``) and carry a note
train an online classifier (river: bag of words -> multinomial naive Bayes). Deals
whose tag is missing or ``other`` are classified from their note; a confident
prediction moves the deal into that bucket for the reason gaps. Notes the classifier
is unsure about are kept (bounded) and clustered by the words that set them apart
from the tagged notes; a cluster large enough is an *off-taxonomy candidate*: a new
reason the vocabulary does not have yet (``gapmon taxonomy suggest``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from river import feature_extraction, naive_bayes

from monitors.taxonomy import OTHER, UNKNOWN

_TOKEN = re.compile(r"[a-z][a-z']+")
STOP_WORDS = frozenset(
    """a an and are as at be but by for from had has have he her his in is it its no not
    of on or our out so than that the their them then there they this to too very was
    we were what when which who will with would after before into over under per via
    all any can could did does done got more most other some such only own same just
    also our your client clients customer customers deal deals said see notes""".split()
)


def tokens(text: str) -> list[str]:
    """Lower-case words of three letters or more, stop words removed, in order."""
    return [t for t in _TOKEN.findall(text.lower()) if len(t) > 2 and t not in STOP_WORDS]


@dataclass(frozen=True)
class UnsureNote:
    assignment_id: str
    quarter: str
    region: str
    outcome: str
    tag: str | None
    text: str


class ReasonModel:
    """Classifier of notes into buckets, reassigned counts, and unsure notes to cluster."""

    def __init__(
        self, min_confidence: float = 0.6, keep_unsure: int = 5000, full_until: int = 300
    ) -> None:
        # bag of words -> multinomial naive Bayes; the two steps are called one after the
        # other (not as a river Pipeline) so a note is tokenised once per event
        self.vectorizer = feature_extraction.BagOfWords(
            lowercase=False, strip_accents=False, tokenizer=tokens
        )
        self.classifier = naive_bayes.MultinomialNB(alpha=0.5)
        self.min_confidence = min_confidence
        # A bucket's vocabulary settles after a few hundred notes: past ``full_until``
        # notes of a bucket, one in ten is learned (the cost is per learned note, so the
        # others are not even tokenised). ``per_bucket`` counts a bucket's notes.
        self.full_until = full_until
        self.per_bucket: Counter[str] = Counter()
        self.trained = 0
        self.known_df: Counter[str] = Counter()  # document frequency of words in tagged notes
        self.unsure: deque[UnsureNote] = deque(maxlen=keep_unsure)
        # (quarter, region, outcome) -> bucket -> deals moved there by the classifier
        self.inferred: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)

    def learn_close(
        self,
        assignment_id: str,
        quarter: str,
        region: str,
        outcome: str,
        tag: str | None,
        bucket: str,
        text: str | None,
    ) -> str | None:
        """One won or lost deal. Returns the inferred bucket of an untagged note, if any."""
        if not text:
            return None
        if bucket not in (OTHER, UNKNOWN):
            # a note is tokenised only when it is learned: most tagged notes are not
            seen = self.per_bucket[bucket]
            if seen < self.full_until or seen % 10 == 0:
                counts = self.vectorizer.transform_one(text)
                if not counts:  # no words in it ("n/a"): nothing to learn, not counted
                    return None
                self.classifier.learn_one(counts, bucket)
                self.trained += 1
                self.known_df.update(counts.keys())
            self.per_bucket[bucket] = seen + 1
            return None
        counts = self.vectorizer.transform_one(text)
        if not counts:  # nothing to classify or cluster
            return None
        if self.trained:
            best, p = self.best(counts)
            if p >= self.min_confidence:
                self.inferred[(quarter, region, outcome)][best] += 1
                return best
        self.unsure.append(UnsureNote(assignment_id, quarter, region, outcome, tag, text))
        return None

    def best(self, counts: dict[str, int]) -> tuple[str, float]:
        """Most probable bucket of a bag of words and its posterior probability."""
        jll = self.classifier.joint_log_likelihood(counts)
        top = max(jll.values())
        total = sum(math.exp(v - top) for v in jll.values())
        label = max(jll, key=jll.__getitem__)
        return label, 1.0 / total

    def classify(self, text: str) -> tuple[str, float] | None:
        """Bucket and probability of a note; None when it has no words or nothing is learned."""
        counts = self.vectorizer.transform_one(text)
        return self.best(counts) if counts and self.trained else None

    def suggest(self, min_size: int = 10, top_terms: int = 5, n_examples: int = 3) -> list[dict]:
        """Clusters of unsure notes around words rare in tagged notes (largest first)."""
        notes = list(self.unsure)
        if not notes:
            return []
        docs = [set(tokens(n.text)) for n in notes]
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d)
        scale = len(notes) / max(self.trained, 1)

        def lift(term: str) -> float:
            return df[term] / (1.0 + self.known_df[term] * scale)

        candidates = sorted(
            (t for t, c in df.items() if c >= min_size and lift(t) >= 2.0),
            key=lambda t: (-df[t], -lift(t), t),
        )
        taken: set[int] = set()
        clusters: list[dict[str, Any]] = []
        for term in candidates:
            members = [i for i, d in enumerate(docs) if term in d and i not in taken]
            if len(members) < min_size:
                continue
            taken.update(members)
            co: Counter[str] = Counter()
            for i in members:
                co.update(t for t in docs[i] if lift(t) >= 2.0)
            terms = [t for t, _ in sorted(co.items(), key=lambda kv: (-kv[1], kv[0]))][:top_terms]
            tags = Counter(notes[i].tag or "(none)" for i in members)
            clusters.append(
                {
                    "term": term,
                    "size": len(members),
                    "top_terms": terms,
                    "tags": dict(tags.most_common(3)),
                    "outcomes": dict(Counter(notes[i].outcome for i in members)),
                    "examples": [notes[i].text for i in members[:n_examples]],
                    "assignment_ids": [notes[i].assignment_id for i in members[:n_examples]],
                }
            )
        return sorted(clusters, key=lambda c: -c["size"])
