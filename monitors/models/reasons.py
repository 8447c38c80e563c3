"""Reason codes: an online text classifier for untagged notes, and off-taxonomy clusters.

Deals whose tag maps cleanly to a bucket (``config/taxonomy.yaml``) and carry a note
train an online classifier (river: bag of words -> multinomial naive Bayes). Deals
whose tag is missing or ``other`` are classified from their note; a confident
prediction moves the deal into that bucket for the reason gaps.

The classifier *abstains* unless it is sure on two counts: the posterior of the best
bucket is at least ``min_confidence``, and at least ``min_coverage`` of the note's words
were seen in tagged notes (naive Bayes scores unseen words alike for every bucket, so a
note about something new is otherwise decided by its one familiar word). Abstentions
are kept (bounded) and clustered: word vectors of the abstained notes, greedy
centroid clustering by cosine similarity (a seed, the notes near it, then the notes
near the members' centroid), so a cluster is notes that share several words, not one
rare word. A cluster large enough is an *off-taxonomy candidate*: a new reason the
vocabulary does not have yet (``gapmon taxonomy suggest``). ``bench/reasons.py``
measures precision per bucket and off-taxonomy recall on ``tests/data/reason_notes.jsonl``.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
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
        self,
        min_confidence: float = 0.6,
        keep_unsure: int = 5000,
        full_until: int = 300,
        min_coverage: float = 0.5,
    ) -> None:
        # bag of words -> multinomial naive Bayes; the two steps are called one after the
        # other (not as a river Pipeline) so a note is tokenised once per event
        self.vectorizer = feature_extraction.BagOfWords(
            lowercase=False, strip_accents=False, tokenizer=tokens
        )
        self.classifier = naive_bayes.MultinomialNB(alpha=0.5)
        self.min_confidence = min_confidence
        self.min_coverage = min_coverage
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
        # (close quarter, region, vertical, bucket, outcome) -> the last few notes, for the RCA
        self.notes: dict[tuple[str, str, str, str, str], deque[tuple[str, str]]] = {}

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
        decided = self.decide(counts)
        if decided is not None:
            self.inferred[(quarter, region, outcome)][decided] += 1
            return decided
        self.unsure.append(UnsureNote(assignment_id, quarter, region, outcome, tag, text))
        return None

    def keep_note(
        self, key: tuple[str, str, str, str, str], assignment_id: str, text: str | None, n: int = 3
    ) -> None:
        """Keep the last ``n`` notes of (close quarter, region, vertical, bucket, outcome)."""
        if not text:
            return
        kept = self.notes.get(key)
        if kept is None:
            kept = self.notes[key] = deque(maxlen=n)
        kept.append((assignment_id, text))

    def best(self, counts: dict[str, int]) -> tuple[str, float]:
        """Most probable bucket of a bag of words and its posterior probability."""
        jll = self.classifier.joint_log_likelihood(counts)
        top = max(jll.values())
        total = sum(math.exp(v - top) for v in jll.values())
        label = max(jll, key=jll.__getitem__)
        return label, 1.0 / total

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("min_coverage", 0.5)  # a checkpoint from before abstention by coverage
        state.setdefault("notes", {})
        self.__dict__.update(state)

    def coverage(self, counts: dict[str, int]) -> float:
        """Share of a note's words (with repeats) seen in the tagged notes."""
        total = sum(counts.values())
        return sum(n for w, n in counts.items() if w in self.known_df) / total if total else 0.0

    def decide(self, counts: dict[str, int]) -> str | None:
        """The bucket of a bag of words, or None: the classifier abstains (module doc)."""
        if not self.trained or self.coverage(counts) < self.min_coverage:
            return None
        best, p = self.best(counts)
        return best if p >= self.min_confidence else None

    def predict(self, text: str) -> str | None:
        """The bucket of a note, or None when the classifier abstains."""
        counts = self.vectorizer.transform_one(text)
        return self.decide(counts) if counts else None

    def classify(self, text: str) -> tuple[str, float] | None:
        """Bucket and probability of a note; None when it has no words or nothing is learned."""
        counts = self.vectorizer.transform_one(text)
        return self.best(counts) if counts and self.trained else None

    def suggest(
        self,
        min_size: int = 10,
        top_terms: int = 5,
        n_examples: int = 3,
        min_similarity: float = 0.3,
        max_notes: int = 2000,
    ) -> list[dict]:
        """Clusters of abstained notes (largest first): greedy centroid clustering of their
        word vectors by cosine similarity (the last ``max_notes`` notes)."""
        notes = list(self.unsure)[-max_notes:]
        docs = [tokens(n.text) for n in notes]
        keep = [i for i, d in enumerate(docs) if d]
        if len(keep) < min_size:
            return []
        notes, docs = [notes[i] for i in keep], [docs[i] for i in keep]
        vocab = sorted({t for d in docs for t in d})
        col = {t: j for j, t in enumerate(vocab)}
        tf = np.zeros((len(docs), len(vocab)), dtype=np.float32)
        for i, d in enumerate(docs):
            for t in d:
                tf[i, col[t]] += 1.0
        df = (tf > 0).sum(axis=0)
        # binary words; words common in tagged notes weigh less (they belong to the known
        # buckets). No idf: the words a new reason's notes share are frequent among the
        # abstained notes *because* they are the new reason.
        known = np.array([self.known_df[t] for t in vocab], dtype=np.float32)
        scale = len(docs) / max(self.trained, 1)
        idf = 1.0 / (1.0 + known * scale / np.maximum(df, 1))
        tf = np.minimum(tf, 1.0)
        x = tf * idf
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        free = np.ones(len(docs), dtype=bool)
        clusters: list[dict[str, Any]] = []
        sims = x @ x.T
        while free.sum() >= min_size:
            degree = ((sims >= min_similarity) & free[None, :]).sum(axis=1) * free
            seed = int(np.argmax(degree))
            if degree[seed] < min_size:
                break
            members = free & (sims[seed] >= min_similarity)
            for _ in range(3):  # the notes near the members' centroid
                centroid = x[members].mean(axis=0)
                centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
                grown = free & ((x @ centroid) >= min_similarity)
                if (grown == members).all():
                    break
                members = grown | members
            idx = np.flatnonzero(members)
            free[idx] = False
            if len(idx) < min_size:
                continue
            weight = x[idx].sum(axis=0)
            share = (tf[idx] > 0).mean(axis=0)
            order = np.argsort(-weight, kind="stable")
            terms = [vocab[j] for j in order[:top_terms] if weight[j] > 0]
            shared = [vocab[j] for j in order if share[j] >= 0.5][:top_terms]
            tags = Counter(notes[i].tag or "(none)" for i in idx)
            clusters.append(
                {
                    "term": terms[0],
                    "size": len(idx),
                    "top_terms": terms,
                    "shared_terms": shared,
                    "tags": dict(tags.most_common(3)),
                    "outcomes": dict(Counter(notes[i].outcome for i in idx)),
                    "examples": [notes[i].text for i in idx[:n_examples]],
                    "assignment_ids": [notes[i].assignment_id for i in idx[:n_examples]],
                    "members": [notes[i].assignment_id for i in idx],
                }
            )
        return sorted(clusters, key=lambda c: -c["size"])
