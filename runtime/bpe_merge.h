// The merge loop both BPE flavours share: repeatedly merge the adjacent pair
// of symbols with the highest priority, the leftmost on ties, until no pair
// merges. SentencePiece ranks a pair by the merged piece's score, byte-level
// BPE by the merge's position in its list (earlier first).
//
// O(n log n) rather than the naive O(n^2) rescans, with the same result: a
// linked list of nodes plus a heap of candidate pairs; entries made stale by
// an earlier merge are skipped when popped. Node indices keep their
// left-to-right order, so "smallest left index" is "leftmost pair".
#pragma once

#include <cstddef>
#include <queue>
#include <vector>

namespace tandem {

struct MergeCandidate {
  double priority = 0;  // higher merges first
  int merged = -1;      // the symbol the pair becomes; -1: the pair never merges
};

// `lookup(left, right)` -> MergeCandidate for two adjacent symbols.
template <typename Lookup>
void merge_adjacent(std::vector<int>& symbols, const Lookup& lookup) {
  const int n = static_cast<int>(symbols.size());
  if (n < 2) return;
  std::vector<int>& tok = symbols;
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Pending {
    double priority;
    int left, right;          // node indices
    int left_tok, right_tok;  // the symbols the pair held when ranked
    int merged;
  };
  auto lower = [](const Pending& a, const Pending& b) {
    return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
  };
  std::priority_queue<Pending, std::vector<Pending>, decltype(lower)> heap(lower);
  auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    const MergeCandidate c = lookup(tok[left], tok[right]);
    if (c.merged >= 0) heap.push({c.priority, left, right, tok[left], tok[right], c.merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Pending p = heap.top();
    heap.pop();
    // A merged-away node holds -1, so this also rejects pairs whose left died.
    if (tok[p.left] != p.left_tok || next[p.left] != p.right || tok[p.right] != p.right_tok) continue;
    tok[p.left] = p.merged;
    tok[p.right] = -1;
    next[p.left] = next[p.right];
    if (next[p.right] >= 0) prev[next[p.right]] = p.left;
    consider(prev[p.left]);
    consider(p.left);
  }
  size_t out = 0;
  for (int i = 0; i >= 0; i = next[i]) tok[out++] = tok[i];  // node 0 is never merged away
  tok.resize(out);
}

}  // namespace tandem
