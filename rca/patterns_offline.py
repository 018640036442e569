"""Patterns without a model: a deterministic grouping of the per-failure answers.

Within each category, each failure's explanation, fix, error signature, failing tool and
invented names become a TF-IDF vector (reduced by a truncated SVD); BIRCH condenses them
into tight subclusters in one pass, and average-linkage agglomerative clustering joins the
subclusters closer than a cosine distance threshold. BIRCH keeps time and memory near
linear in the number of failures: the quadratic step runs over subclusters, whose number
follows the variety of the answers, not their count. A cluster becomes a pattern when it
spans at least MIN_CASES failed cases, and is named from what its members share.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Mapping

import numpy as np
from sklearn.cluster import AgglomerativeClustering, Birch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from rca.pattern_types import FailureSummary, Grouping, Pattern, outside_agent

VERSION = "offline-1"  # bump when the features, thresholds or naming change: stored groupings are redone
METHOD = "tfidf-svd-birch"  # stored as the grouping's model
DISTANCE = 0.5  # cosine distance under which subclusters join (average linkage)
BIRCH_RADIUS = 0.3  # a subcluster's radius, on unit vectors: members ~0.95 cosine-similar
SVD_DIMS = 64
MIN_CASES = 2  # a pattern recurs: one failed case (however many attempts) is not a pattern
TOP_TERMS = 3
_TOKEN = r"(?u)\b[A-Za-z_][\w.]*\w\b"  # identifiers whole: read_file, LlmAgent.model, google.adk


def _document(s: FailureSummary) -> str:
    """The text a failure is compared by; tools and symbols marked so they never merge with prose."""
    marks = [f"tool_{s.failing_tool}"] if s.failing_tool else []
    marks += [f"symbol_{x}" for x in s.symbols]
    return " ".join([s.explanation, s.fix, s.error or "", *marks])


def _vectors(docs: list[str]) -> tuple[np.ndarray, TfidfVectorizer, object]:
    """TF-IDF rows, and their SVD reduction normalized for cosine geometry."""
    vectorizer = TfidfVectorizer(token_pattern=_TOKEN, sublinear_tf=True, stop_words="english", dtype=np.float32)
    try:
        tfidf = vectorizer.fit_transform(docs)
    except ValueError:  # no word in any document: all alike
        return np.ones((len(docs), 1), dtype=np.float32), vectorizer, None
    dims = min(SVD_DIMS, tfidf.shape[1] - 1, len(docs) - 1)
    reduced = TruncatedSVD(dims, random_state=0).fit_transform(tfidf) if dims >= 2 else tfidf.toarray()
    return normalize(reduced), vectorizer, tfidf


def _clusters(points: np.ndarray) -> np.ndarray:
    """A cluster label per point: BIRCH subclusters, then agglomerative clustering over them."""
    if len(points) < 2:
        return np.zeros(len(points), dtype=int)
    birch = Birch(threshold=BIRCH_RADIUS, n_clusters=None, branching_factor=50).fit(points)
    centers = birch.subcluster_centers_
    if len(centers) < 2:
        return np.zeros(len(points), dtype=int)
    joined = AgglomerativeClustering(n_clusters=None, distance_threshold=DISTANCE, metric="cosine",
                                     linkage="average").fit_predict(centers)
    return joined[birch.labels_]


def group(items: list[FailureSummary], cases: Mapping[int, Hashable]) -> Grouping:
    """Patterns over `items`; `cases` maps each failure id to its failed case (run x case x generator).

    One BLAS thread: the matrices are small, and on a busy machine threads cost more than they give
    (on this project's 2-core machines, 2,500 failures took 1.2 s with the default threads, 0.35 s with one).
    """
    with threadpool_limits(limits=1):
        return _group(items, cases)


def _group(items: list[FailureSummary], cases: Mapping[int, Hashable]) -> Grouping:
    patterns: list[Pattern] = []
    other: list[int] = []
    by_category: dict[str, list[FailureSummary]] = {}
    for s in sorted(items, key=lambda s: s.id):
        by_category.setdefault(s.category, []).append(s)
    for category in sorted(by_category):
        members = by_category[category]
        # Identical documents share a cluster: each distinct one is vectorized and clustered once.
        distinct, inverse = np.unique(np.array([_document(s) for s in members], dtype=object), return_inverse=True)
        points, vectorizer, tfidf = _vectors(distinct.tolist())
        labels, points = _clusters(points)[inverse], points[inverse]
        tfidf = tfidf[inverse] if tfidf is not None else None  # type: ignore[index]
        for label in sorted(set(labels.tolist()), key=lambda lab: int(np.argmax(labels == lab))):
            rows = np.flatnonzero(labels == label)
            chosen = [members[i] for i in rows]
            if len({cases[s.id] for s in chosen}) < MIN_CASES:
                other += [s.id for s in chosen]
                continue
            medoid = chosen[int(np.argmax(points[rows] @ points[rows].mean(axis=0)))]
            patterns.append(_pattern(category, chosen, medoid, tfidf, vectorizer, rows))
    return Grouping(patterns=patterns, other=sorted(other))


def _terms(tfidf: object, vectorizer: TfidfVectorizer, rows: np.ndarray, known: list[str]) -> list[str]:
    """The words that most set these rows apart from the rest of their category,
    each adding a word the earlier ones (and the `known` names) do not have."""
    matrix = tfidf.tocsr()  # type: ignore[attr-defined]
    lift = np.asarray(matrix[rows].mean(axis=0)).ravel() - np.asarray(matrix.mean(axis=0)).ravel()
    names = vectorizer.get_feature_names_out()
    covered = {w for name in known for w in re.split(r"[\W_]+", name.lower()) if w}
    terms: list[str] = []
    for i in np.argsort(-lift, kind="stable")[:50]:
        words = set(re.split(r"[\s._]+", str(names[i])))
        if lift[i] <= 0 or len(terms) == TOP_TERMS:
            break
        if not str(names[i]).startswith(("tool_", "symbol_")) and not words <= covered:
            terms.append(str(names[i]))
            covered |= words
    return terms


def _shared(values: list[str | None], share: float = 0.5) -> str | None:
    """The most common value, if more than `share` of the members have it."""
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    value, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return value if n > share * len(values) else None


def _pattern(category: str, members: list[FailureSummary], medoid: FailureSummary, tfidf: object,
             vectorizer: TfidfVectorizer, rows: np.ndarray) -> Pattern:
    """Named from what the members share: an invented name, the failing tool, the most distinctive words."""
    symbol = _shared([s.symbols[0] if s.symbols else None for s in members])
    tool = _shared([s.failing_tool for s in members])
    error = _shared([s.error for s in members])
    known = [x for x in (symbol, tool) if x]
    terms = _terms(tfidf, vectorizer, rows, known) if tfidf is not None else []
    name = " · ".join([*(f"`{x}`" for x in known), ", ".join(terms)]).strip(" ·") or (error or category)[:80]
    what = [f"the name `{symbol}`" if symbol else "", f"failing {tool} calls" if tool else "",
            f"the error {error!r}" if error else "", f"the words {', '.join(map(repr, terms))}" if terms else ""]
    first = re.split(r"(?<=[.;])\s", medoid.explanation, maxsplit=1)[0][:240]
    return Pattern(
        name=name, description=f"{category} failures sharing {', '.join(x for x in what if x) or 'one explanation'}. "
                               f"Typical: {first}",
        fix=medoid.fix, category=category, agent_caused=not outside_agent(category),
        failure_ids=[s.id for s in members],
    )
