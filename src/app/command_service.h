// The write side as an application service: one command, as a client asked for it, with
// its Idempotency-Key and If-Match, answered as docs/api.md §2 says. Every entrance (the
// HTTP routes; later gRPC and bus consumers) calls it the same way: it parses a request
// into a CommandRequest and maps the CommandResult (or Error) to its own wire.
//
// For a request with an idempotency key: a key already stored with the same request
// answers the stored answer again, byte for byte (a replay: never refused, nothing
// decided); stored with another request, idempotency_key_reused. A command refused while
// a try with the same key was landing (a client's retry racing its first try) answers
// that try's stored answer instead.
//
// Which thread runs what: execute() looks the key up and runs the first attempt on the
// caller's thread (a replay or a refusal is often answered before it returns); a success
// is answered from the store's thread; a refused command with a key is looked up again on
// the command handler's retry threads (it may wait for appends in flight). `done` must
// not block.
//
// Thread safety: execute() may be called from any thread at once.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "app/admission.h"
#include "app/command_handler.h"

namespace orderflow::app {

// An Idempotency-Key and the request it came with.
struct IdempotencyKey {
  std::string key;
  // What identifies the request (request_fingerprint()): a different one reuses the key.
  std::string fingerprint;
  // The form records kept before the digest (the canonical body itself): still the same request.
  std::string legacy_fingerprint;
};

// The key for a request named `request` (e.g. "POST /api/v1/orders") with this body in
// canonical form. The record keeps a digest of the body, not the body: it may hold
// personal data, which must not outlive its erasure (personal_data.h) in that table.
IdempotencyKey idempotency_key(std::string key, std::string_view request, std::string_view canonical_body);

template <class A>
struct CommandRequest {
  std::string id;  // the entity the command is for
  typename A::Command command;
  std::optional<es::StreamVersion> if_match;   // the version the stream must be at; no retry
  std::optional<IdempotencyKey> idempotency;
  // An accepted command's answer: its status, and its body from the append's version and
  // position (stored with the key, so a replay is the same bytes).
  int status = 200;
  std::function<std::string(const es::AppendResult&)> render;
  std::string actor;
  std::string correlation_id;  // empty: the command id
  std::string traceparent;
  bool new_stream = false;  // the id was made just now (CommandMeta::new_stream)
};

struct CommandResult {
  int status = 0;
  std::string body;
  es::StreamVersion version = es::kNoStream;  // the stream's, after the command
  bool replayed = false;  // the stored answer to an earlier request with the key
};

using CommandResultCallback = std::function<void(Result<CommandResult>)>;

class CommandService {
 public:
  // `admission` may be null (never refuse). Both must outlive the service.
  CommandService(CommandHandler& commands, Admission* admission) : commands_(commands), admission_(admission) {}

  // Runs the request; `done` is called exactly once. Errors: the command's own,
  // idempotency_key_reused, overloaded (new work refused by admission: nothing written;
  // a replay is never refused), and the store's.
  template <class A>
  void execute(CommandRequest<A> request, CommandResultCallback done) {
    run<A>(std::move(request), std::move(done), true);
  }

 private:
  // `again`: a request refused because its key was used may run once more, if the key's
  // record is gone by the time its answer is looked up (it expired in between).
  template <class A>
  void run(CommandRequest<A> request, CommandResultCallback done, bool again);

  // Answers a request whose key is stored: a replay, or idempotency_key_reused.
  static Result<CommandResult> answer_stored(const IdempotencyKey& key, const es::IdempotencyRecord& stored);

  CommandHandler& commands_;
  Admission* admission_;
};

}  // namespace orderflow::app
