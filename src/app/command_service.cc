#include "app/command_service.h"

#include <array>
#include <boost/json.hpp>

#include "core/digest.h"
#include "core/encoding.h"

namespace orderflow::app {

IdempotencyKey idempotency_key(std::string key, std::string_view request, std::string_view canonical_body) {
  const auto digest = sha256({canonical_body});
  const auto hex = hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  std::string named(request);
  named += ' ';
  return {std::move(key), named + "sha256:" + hex, named + std::string(canonical_body)};
}

Result<CommandResult> CommandService::answer_stored(const IdempotencyKey& key, const es::IdempotencyRecord& stored) {
  if (stored.request_fingerprint != key.fingerprint && stored.request_fingerprint != key.legacy_fingerprint)
    return fail(Errc::idempotency_key_reused, "Idempotency-Key was already used for another request");
  // The version is the one the first answer named.
  es::StreamVersion version{0};
  boost::system::error_code ec;
  auto v = boost::json::parse(stored.response, ec);
  if (!ec && v.is_object())
    if (auto* ver = v.as_object().if_contains("version"); ver && ver->is_int64()) version = es::StreamVersion{ver->as_int64()};
  return CommandResult{stored.status, stored.response, version, true};
}

template <class A>
void CommandService::run(CommandRequest<A> request, CommandResultCallback done, bool again) {
  std::optional<CommandRequest<A>> retry;
  if (request.idempotency && again) retry = request;
  CommandMeta meta;
  meta.correlation_id = std::move(request.correlation_id);
  meta.actor = std::move(request.actor);
  meta.traceparent = std::move(request.traceparent);
  meta.if_match = request.if_match;
  meta.new_stream = request.new_stream;
  auto& store = commands_.store();
  if (request.idempotency) {
    const auto& key = *request.idempotency;
    auto stored = store.find_idempotency(key.key);
    if (!stored) return done(fail(stored.error()));
    if (*stored) return done(answer_stored(key, **stored));
    meta.idempotency = es::IdempotencyRecord{key.key, key.fingerprint, request.status, "", 0};
    meta.render_response = request.render;
  }
  // A retry of a stored request was answered above, whatever the load: only new work is refused.
  if (admission_)
    if (auto admitted = admission_->admit(); !admitted) return done(fail(admitted.error()));

  commands_.handle<A>(
      request.id, std::move(request.command), std::move(meta),
      [this, &store, status = request.status, render = std::move(request.render),
       key = std::move(request.idempotency), retry = std::move(retry),
       done = std::move(done)](Result<Handled<A>> handled) mutable {
        if (handled) return done(CommandResult{status, render(handled->result), handled->result.version, false});
        if (!key) return done(fail(handled.error()));
        // An earlier request with this key may have been landing while this one was decided
        // (a client's retry racing its first try, perhaps sent to a process that died): if
        // it was stored, it is the key's answer, not this refusal. The look-up may wait for
        // appends in flight: never on the store's thread, which may be this one.
        commands_.post([this, &store, key = std::move(*key), error = handled.error(), retry = std::move(retry),
                        done = std::move(done)]() mutable {
          auto stored = store.find_idempotency_settled(key.key);
          if (stored && *stored) return done(answer_stored(key, **stored));
          // Refused for a key whose record is gone: it expired after the store saw it.
          // The key is new again (docs/api.md §2): the request runs as new, once.
          if (stored && retry && error.code == Errc::idempotency_key_reused)
            return run<A>(std::move(*retry), std::move(done), false);
          done(fail(std::move(error)));
        });
      });
}

template void CommandService::run<Product>(CommandRequest<Product>, CommandResultCallback, bool);
template void CommandService::run<Account>(CommandRequest<Account>, CommandResultCallback, bool);
template void CommandService::run<Order>(CommandRequest<Order>, CommandResultCallback, bool);

}  // namespace orderflow::app
