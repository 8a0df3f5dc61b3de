#include "store/sqlite/stream_index_backlog.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace orderflow::sqlite {

void StreamIndexBacklog::add(const es::StreamId& stream_id, const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  MutexLock lk(mu_);
  auto [it, fresh] = streams_.try_emplace(stream_id);
  if (it->second.empty()) oldest_.emplace(entries.front().position, stream_id);
  it->second.insert(it->second.end(), entries.begin(), entries.end());
  size_ += entries.size();
  added_ += entries.size();
}

std::vector<StreamIndexBacklog::Entry> StreamIndexBacklog::entries(const es::StreamId& stream_id,
                                                                  es::Position up_to) const {
  MutexLock lk(mu_);
  std::vector<Entry> out;
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return out;
  for (const auto& e : it->second) {
    if (e.position > up_to) break;
    out.push_back(e);
  }
  return out;
}

std::optional<StreamIndexBacklog::Entry> StreamIndexBacklog::last(const es::StreamId& stream_id,
                                                                 es::Position up_to) const {
  MutexLock lk(mu_);
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return std::nullopt;
  for (auto e = it->second.rbegin(); e != it->second.rend(); ++e)
    if (e->position <= up_to) return *e;
  return std::nullopt;
}

std::size_t StreamIndexBacklog::target(Clock::time_point now) {
  if (limits_.max <= limits_.min) return limits_.min;
  if (marks_.empty() || now - marks_.back().first >= std::chrono::milliseconds(250)) marks_.emplace_back(now, added_);
  while (marks_.size() > 1 && now - marks_[1].first >= limits_.window) marks_.pop_front();
  return static_cast<std::size_t>(
      std::clamp<std::uint64_t>(added_ - marks_.front().second, limits_.min, limits_.max));
}

StreamIndexBacklog::Pick StreamIndexBacklog::pick(std::size_t wanted, es::Position next, Clock::time_point now) {
  MutexLock lk(mu_);
  Pick out;
  out.indexed_below = oldest_.empty() ? next : oldest_.begin()->first;
  if (size_ <= target(now) || streams_.empty()) return out;
  std::unordered_set<std::string_view> picked;  // views of streams_ keys: no copies
  std::size_t taken = 0;
  auto it = streams_.upper_bound(cursor_);
  for (std::size_t visited = 0; visited < streams_.size() && taken < wanted; ++visited, ++it) {
    if (it == streams_.end()) it = streams_.begin();
    if (it->second.empty()) continue;
    out.streams.emplace_back(it->first, it->second);
    picked.insert(it->first.view());
    taken += it->second.size();
  }
  if (!out.streams.empty()) cursor_ = out.streams.back().first;
  out.indexed_below = next;
  for (const auto& [position, stream] : oldest_)
    if (!picked.count(stream.view())) {
      out.indexed_below = position;
      break;
    }
  return out;
}

void StreamIndexBacklog::drop(const Pick& picked) {
  MutexLock lk(mu_);
  for (const auto& [stream, entries] : picked.streams) {
    auto it = streams_.find(stream);
    if (it == streams_.end() || entries.empty()) continue;
    auto& pending = it->second;
    oldest_.erase({pending.front().position, stream});
    const auto n = std::min(entries.size(), pending.size());
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
    size_ -= n;
    if (pending.empty()) streams_.erase(it);
    else oldest_.emplace(pending.front().position, stream);
  }
}

void StreamIndexBacklog::forget_after(es::Position position) {
  MutexLock lk(mu_);
  for (auto it = streams_.begin(); it != streams_.end();) {
    auto& pending = it->second;  // ascending by position
    auto past = std::find_if(pending.begin(), pending.end(), [&](const Entry& e) { return e.position > position; });
    if (past == pending.begin() && past != pending.end()) oldest_.erase({pending.front().position, it->first});
    size_ -= static_cast<std::size_t>(pending.end() - past);
    pending.erase(past, pending.end());
    it = pending.empty() ? streams_.erase(it) : std::next(it);
  }
}

std::size_t StreamIndexBacklog::size() const {
  MutexLock lk(mu_);
  return size_;
}

}  // namespace orderflow::sqlite
