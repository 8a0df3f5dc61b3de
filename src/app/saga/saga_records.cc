#include "app/saga/saga_records.h"

#include "codec/domain_codec.h"
#include "domain/decider.h"

namespace orderflow::app::saga {

namespace {

namespace ds = domain::saga;

template <class Event>
Result<Event> decode_record(const es::RecordedEvent& e) {
  auto decoded = codec::decode_event<Event>(e.type, e.data);
  if (!decoded)
    return fail(Errc::corrupt, "the saga record at position " + to_string(e.position) + " (" + e.stream_id.str() +
                                   " version " + to_string(e.version) +
                                   ") is corrupt: " + decoded.error().message);
  return decoded;
}

// Every event of `stream`, oldest first, a page at a time.
template <class Fn>
Result<void> for_each_in_stream(es::EventStore& store, const es::StreamId& stream, Fn fn) {
  constexpr std::size_t kPage = 1000;
  for (es::StreamVersion from{0};;) {
    OF_ASSIGN_OR_RETURN(auto page, store.read_stream(stream, from, kPage, es::Direction::forward));
    for (const auto& e : page)
      if (auto r = fn(e); !r) return r;
    if (page.size() < kPage) return {};
    from = page.back().version + 1;
  }
}

}  // namespace

Result<ds::Event> decode_saga_record(const es::RecordedEvent& e) { return decode_record<ds::Event>(e); }

Result<ds::DeadLetterEvent> decode_dead_letter(const es::RecordedEvent& e) {
  return decode_record<ds::DeadLetterEvent>(e);
}

Result<std::optional<ds::SagaEnded>> last_saga_end(es::EventStore& store, const std::string& order_id) {
  OF_ASSIGN_OR_RETURN(auto events,
                      store.read_stream(saga_stream(order_id), es::StreamVersion{-1}, 50, es::Direction::backward));
  for (const auto& e : events) {
    OF_ASSIGN_OR_RETURN(auto record, decode_saga_record(e));
    if (auto* ended = std::get_if<ds::SagaEnded>(&record)) return std::optional(std::move(*ended));
  }
  return std::optional<ds::SagaEnded>();
}

Result<std::vector<DeadLetter>> dead_letters(es::EventStore& store) {
  std::vector<DeadLetter> out;
  OF_RETURN_IF_ERROR(for_each_in_stream(store, kDeadLetterStream, [&](const es::RecordedEvent& e) -> Result<void> {
    OF_ASSIGN_OR_RETURN(auto record, decode_dead_letter(e));
    std::visit(domain::overloaded{
                   [&](ds::DeadLetterRecorded& r) {
                     out.push_back({std::move(r), e.recorded_at_ms, std::nullopt});
                   },
                   [&](const ds::DeadLetterRetried& r) {
                     for (auto& d : out)
                       if (d.recorded.dead_letter_id == r.dead_letter_id) d.retried_at_ms = e.recorded_at_ms;
                   },
               },
               record);
    return {};
  }));
  return out;
}

Result<DeadLetterCounts> count_dead_letters(es::EventStore& store) {
  DeadLetterCounts n;
  OF_RETURN_IF_ERROR(for_each_in_stream(store, kDeadLetterStream, [&](const es::RecordedEvent& e) -> Result<void> {
    n.recorded += e.type == ds::DeadLetterRecorded::kType;
    n.retried += e.type == ds::DeadLetterRetried::kType;
    return {};
  }));
  return n;
}

}  // namespace orderflow::app::saga
