"""The inner loop of the lexical top-k (:meth:`matcher.lexical_topk.EstimatedRelevance.top`),
compiled with numba when it is installed (it comes with shap), else in numpy.

Why compiled: the top-k reads every posting of the query's essential terms; numpy needs about ten
passes over them (fancy indexing converts the int32 postings to intp each time), the loop below
two. Both give the same documents and values (float64 sums in the same order).
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _gather_loop(indptr, indices, data, data2, terms, weights, weights2, allowed, total, shift, rest):
    """Scatter-add the terms' weighted postings into ``total`` (zeros), then read each document
    once (its first posting; the read puts the zero back) and keep the allowed ones whose value
    plus ``shift`` plus ``rest`` is positive."""
    size = 0
    for j in range(len(terms)):
        t = terms[j]
        for p in range(indptr[t], indptr[t + 1]):
            total[indices[p]] += weights[j] * data[p] + weights2[j] * data2[p]
        size += indptr[t + 1] - indptr[t]
    docs = np.empty(size, np.int64)
    values = np.empty(size, np.float64)
    count = 0
    for j in range(len(terms)):
        t = terms[j]
        for p in range(indptr[t], indptr[t + 1]):
            d = indices[p]
            v = total[d]
            if v != 0.0:
                total[d] = 0.0
                v += shift
                if allowed[d] and v + rest > 0.0:
                    docs[count] = d
                    values[count] = v
                    count += 1
    return docs[:count], values[:count]


@cache
def _kernel(function):
    """``function`` compiled by numba on first use (cached on disk where numba finds a writable
    place), or None without numba. Lazy: importing numba costs ~0.2 s and every process that loads
    a catalog imports this module, while the loops run only above ``lexical_exact_max``."""
    global _SEEK
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - which branch runs depends on the environment
        return None
    if function is not _seek:  # numba resolves the global when it compiles a caller
        _SEEK = _kernel(_seek)
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:  # no writable cache location: compile at each start instead
        return njit(nogil=True)(function)


def gather(indptr, indices, data, data2, terms, weights, weights2, allowed, total, shift, rest):
    """Distinct allowed documents of ``terms`` (unordered) whose ``sum of weights * data (+
    weights2 * data2) + shift + rest > 0``, with that sum plus ``shift`` (float64). ``total``: a
    float64 array of n zeros, zeros again on return. ``data2`` / ``weights2``: a second signal on
    the same postings (zeros when none)."""
    compiled = _kernel(_gather_loop)
    if compiled is not None:
        return compiled(indptr, indices, data, data2, terms, weights, weights2, allowed, total, shift, rest)
    return gather_numpy(indptr, indices, data, data2, terms, weights, weights2, allowed, total, shift, rest)


def gather_numpy(indptr, indices, data, data2, terms, weights, weights2, allowed, total, shift, rest):
    """:func:`gather` in numpy (the same result; used where numba is absent)."""
    columns = []
    for t, w, w2 in zip(terms, weights, weights2):
        s, e = indptr[t], indptr[t + 1]
        docs = indices[s:e]
        total[docs] += w * data[s:e].astype(np.float64) + w2 * data2[s:e]
        columns.append(docs)
    docs = np.concatenate(columns).astype(np.int64) if columns else np.zeros(0, np.int64)
    values = total[docs]
    total[docs] = 0.0
    first = np.zeros(len(docs), bool)
    if len(docs):
        _, at = np.unique(docs, return_index=True)
        first[at] = True
    keep = first & allowed[docs] & (values + shift + rest > 0)
    return docs[keep], values[keep] + shift


def _seek(indices, low, hi, d, guess):
    """The first place in ``indices[low:hi]`` (ascending) holding ``d`` or more (``hi`` if none),
    searched outwards from ``guess`` (steps of 1, 2, 4… then a binary search): about twice the log
    of the guess's error, where a search from ``low`` costs the log of the whole gap."""
    if guess >= hi:
        guess = hi - 1
    if guess < low:
        guess = low
    if guess >= hi:
        return hi
    if indices[guess] < d:
        bottom, top, reach = guess + 1, hi, 1
        while guess + reach < hi:
            if indices[guess + reach] < d:
                bottom = guess + reach + 1
                reach *= 2
            else:
                top = guess + reach
                break
    else:
        bottom, top, reach = low, guess, 1
        while guess - reach >= low:
            if indices[guess - reach] >= d:
                top = guess - reach
                reach *= 2
            else:
                bottom = guess - reach + 1
                break
    while bottom < top:
        mid = (bottom + top) >> 1
        if indices[mid] < d:
            bottom = mid + 1
        else:
            top = mid
    return bottom


_SEEK = _seek  # compiled by _kernel before the loops that call it are


def _places_loop(rows, docs, out):
    """``out[i] = j`` where ``docs[j] == rows[i]`` (both ascending; ``out`` -1): a merge when the
    lists are of similar length, else a search per row from where a straight line through the
    list's first and last document puts it (postings are spread over the corpus), no earlier than
    the last row's place."""
    n_rows, n_docs = len(rows), len(docs)
    if n_docs == 0:
        return out
    if n_docs <= 16 * n_rows:
        j = 0
        for i in range(n_rows):
            r = rows[i]
            while j < n_docs and docs[j] < r:
                j += 1
            if j == n_docs:
                break
            if docs[j] == r:
                out[i] = j
        return out
    first, span = docs[0], max(1, docs[n_docs - 1] - docs[0])
    lo = 0
    for i in range(n_rows):
        r = rows[i]
        guess = int((r - first) * (n_docs / span))
        lo = _SEEK(docs, lo, n_docs, r, guess)
        if lo == n_docs:
            break
        if docs[lo] == r:
            out[i] = lo
    return out


def places_at(rows: np.ndarray, docs: np.ndarray) -> np.ndarray | None:
    """Where each of the ascending ``rows`` is in one postings list's ascending ``docs`` (int64, -1
    where absent); None without numba (the caller then looks up in numpy)."""
    compiled = _kernel(_places_loop)
    if compiled is None:
        return None
    return compiled(rows, docs, np.full(len(rows), -1, np.int64))


def _sample_loop(indptr, indices, data, data2, terms, weights, weights2, values, products):
    """Per term, scatter-add ``weights * data`` into ``values[0]`` and ``weights2 * data2`` into
    ``values[1]`` (when ``values`` has two rows), and add the term's own products to ``products``."""
    two = values.shape[0] > 1
    for j in range(len(terms)):
        t = terms[j]
        for p in range(indptr[t], indptr[t + 1]):
            x = weights[j] * data[p]
            values[0, indices[p]] += x
            products[0, 0] += x * x
            if two:
                y = weights2[j] * data2[p]
                values[1, indices[p]] += y
                products[0, 1] += x * y
                products[1, 1] += y * y


def sample_sums(indptr, indices, data, data2, terms, weights, weights2, values, products) -> None:
    """Each signal of the ``terms`` (weighted) summed into ``values`` (float64, (s, sample size))
    per sample document, and the sum over terms of each term's own products of its signals
    (``products``, (s, s), upper triangle) — what the co-occurrence estimate subtracts. ``data2`` /
    ``weights2``: the TF-IDF signal on the same postings (ignored when ``values`` has one row)."""
    compiled = _kernel(_sample_loop)
    if compiled is not None:
        compiled(indptr, indices, data, data2, terms, weights, weights2, values, products)
        return
    for j, t in enumerate(terms):
        s, e = indptr[t], indptr[t + 1]
        x = [weights[j] * data[s:e].astype(np.float64), weights2[j] * data2[s:e].astype(np.float64)][:values.shape[0]]
        for i, xi in enumerate(x):
            values[i, indices[s:e]] += xi
            for k in range(i, len(x)):
                products[i, k] += float((xi * x[k]).sum())
