#include "app/saga/saga_admin.h"

#include <algorithm>
#include <boost/json.hpp>

#include "app/saga/saga_runner.h"
#include "codec/domain_codec.h"
#include "core/uuid.h"

namespace orderflow::app::saga {

std::vector<SagaView> SagaAdmin::list(const ListSagas& request) {
  return runner_ ? runner_->list(request.state, request.limit) : std::vector<SagaView>{};
}

Result<SagaView> SagaAdmin::find(const std::string& order_id) {
  if (runner_)
    if (auto v = runner_->view(order_id)) return std::move(*v);
  OF_ASSIGN_OR_RETURN(auto ended, last_saga_end(store_, order_id));
  if (!ended) return fail(Errc::not_found, "no saga for order " + order_id);
  auto& e = *ended;
  return SagaView{order_id, e.state, std::move(e.reason), std::move(e.steps), 0};
}

Result<std::vector<DeadLetter>> SagaAdmin::dead_letters() { return saga::dead_letters(store_); }

void SagaAdmin::retry(const RetryDeadLetter& request, std::function<void(Result<DeadLetterRetryAccepted>)> done) {
  auto letters = dead_letters();
  if (!letters) return done(fail(letters.error()));
  auto it = std::find_if(letters->begin(), letters->end(),
                         [&](const DeadLetter& d) { return d.recorded.dead_letter_id == request.dead_letter_id; });
  if (it == letters->end()) return done(fail(Errc::not_found, "no dead letter " + request.dead_letter_id));
  domain::saga::DeadLetterEvent retried =
      domain::saga::DeadLetterRetried{request.dead_letter_id, it->recorded.order_id};
  boost::json::object meta{{"correlation_id", it->recorded.order_id}, {"actor", request.actor}};
  es::AppendRequest append;
  append.stream_id = kDeadLetterStream;
  append.events.push_back({uuid_v7(), domain::saga::event_type_name(retried), 1, codec::encode_event(retried),
                           boost::json::serialize(meta)});
  store_.append_async(std::move(append),
                      [accepted = DeadLetterRetryAccepted{request.dead_letter_id, it->recorded.order_id, es::Position{0}},
                       done = std::move(done)](Result<es::AppendResult> r) mutable {
                        if (!r) return done(fail(r.error()));
                        accepted.position = r->position;
                        done(std::move(accepted));
                      });
}

}  // namespace orderflow::app::saga
