#include "app/dead_letters.h"

#include <algorithm>

#include "domain/validation.h"

namespace orderflow::app {

namespace {

std::int64_t at_ms(const AnyDeadLetter& d) {
  if (const auto* s = std::get_if<saga::DeadLetter>(&d)) return s->recorded_at_ms;
  return std::get<bus_projector::BusDeadLetter>(d).at_ms;
}

}  // namespace

Result<std::vector<AnyDeadLetter>> DeadLetterAdmin::list() {
  OF_ASSIGN_OR_RETURN(auto sagas, saga_.dead_letters());
  std::vector<AnyDeadLetter> out(std::make_move_iterator(sagas.begin()), std::make_move_iterator(sagas.end()));
  for (auto* bus : bus_) {
    OF_ASSIGN_OR_RETURN(auto held, bus->dead_letters());
    out.insert(out.end(), std::make_move_iterator(held.begin()), std::make_move_iterator(held.end()));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return at_ms(a) < at_ms(b); });
  return out;
}

void DeadLetterAdmin::retry(const saga::RetryDeadLetter& request, std::function<void(Result<AnyRetry>)> done) {
  if (!domain::is_uuid(request.dead_letter_id))
    return done(fail(Errc::invalid_argument, "a dead letter id is a UUID, not " + request.dead_letter_id));
  for (auto* bus : bus_) {
    auto held = bus->dead_letters();
    if (!held) return done(fail(held.error()));
    if (std::any_of(held->begin(), held->end(),
                    [&](const auto& d) { return d.dead_letter_id == request.dead_letter_id; }))
      return bus->redrive(request.dead_letter_id, request.actor,
                           [done = std::move(done)](Result<bus_projector::Redriven> r) {
                             if (!r) return done(fail(r.error()));
                             done(AnyRetry(std::move(*r)));
                           });
  }
  saga_.retry(request, [done = std::move(done)](Result<saga::DeadLetterRetryAccepted> r) {
    if (!r) return done(fail(r.error()));
    done(AnyRetry(std::move(*r)));
  });
}

}  // namespace orderflow::app
