#include "app/relay/relay.h"

#include <boost/json.hpp>

#include "app/personal_data.h"
#include "codec/event_json.h"
#include "core/failures.h"

namespace orderflow::app::relay {

namespace {
constexpr const char* kCheckpoint = "relay";
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
}  // namespace

es::BusMessage message(const es::RecordedEvent& e, const std::string& topic_prefix,
                       std::optional<es::Position> previous) {
  es::BusMessage m;
  m.topic = topic_prefix + "." + std::string(e.stream_id.category());
  m.key = e.stream_id.str();
  m.id = e.event_id;
  m.headers = {{"orderflow-event-id", e.event_id},
               {"orderflow-stream-id", e.stream_id.str()},
               {"orderflow-type", e.type},
               {"orderflow-version", to_string(e.version)},
               {"orderflow-position", to_string(e.position)},
               {"orderflow-schema-version", std::to_string(e.schema_version)}};
  if (previous) m.headers.emplace_back(kPreviousPositionHeader, to_string(*previous));
  boost::system::error_code ec;
  auto metadata = boost::json::parse(e.metadata, ec);
  if (!ec && metadata.is_object())
    for (const auto& [field, header] : {std::pair{"correlation_id", "orderflow-correlation-id"},
                                        std::pair{"causation_id", "orderflow-causation-id"},
                                        std::pair{"traceparent", "traceparent"}})
      if (const auto* v = metadata.as_object().if_contains(field); v && v->is_string())
        m.headers.emplace_back(header, std::string(v->as_string()));
  codec::append_event_json(m.body, e);
  return m;
}

Relay::Relay(es::EventStore& store, es::CheckpointStore& checkpoints, es::BusPublisher& bus, RelayOptions options,
             es::LeaderLease* lease, std::function<void(bool)> on_lead)
    : store_(store),
      checkpoints_(checkpoints),
      bus_(bus),
      options_(std::move(options)),
      lease_(lease),
      on_lead_(std::move(on_lead)) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  thread_.start("of-relay", [this] { loop(); });
}

void Relay::stop() { thread_.stop(); }

RelayStatus Relay::status() const {
  RelayStatus s;
  s.bus = options_.bus;
  s.position = position_;
  s.published = published_;
  {
    MutexLock lk(mu_);
    s.last_error = last_error_;
  }
  if (!thread_.running())
    s.state = "stopped";
  else if (!leading_)
    s.state = "standby";
  else
    s.state = failed_ ? "retrying" : "publishing";
  return s;
}

Result<void> Relay::on_batch(std::span<const es::RecordedEvent> events) {
  if (events.empty()) return {};
  std::vector<es::BusMessage> messages;
  messages.reserve(events.size());
  es::Position previous = previous_;
  for (const auto& e : events) {
    messages.push_back(message(e, options_.topic_prefix, previous));
    previous = e.position;
  }
  Result<void> published;
  if (options_.personal_data)
    for (auto& m : messages)
      if (auto shown = options_.personal_data->reveal(m.body); !shown) {
        published = shown;
        break;
      }
  if (published) published = bus_.publish(messages);
  if (!published) {
    failed_ = true;
    MutexLock lk(mu_);
    last_error_ = published.error().message;
    return published;
  }
  published_ += events.size();
  position_ = events.back().position;
  previous_ = previous;
  if (failed_.exchange(false)) {
    MutexLock lk(mu_);
    last_error_.reset();
  }
  return {};
}

// Relays while this process leads (always, without a lease). A subscription that stopped
// (a publish or a checkpoint failed) is started again from the checkpoint after a back-off.
void Relay::loop() {
  auto backoff = kFirstBackoff;
  auto retry_at = std::chrono::steady_clock::now();
  auto lease_check = retry_at;
  bool lead = lease_ == nullptr;
  leading_ = lead;
  auto set_lead = [&](bool on) {
    lead = on;
    leading_ = on;
    if (on_lead_) on_lead_(on);
  };
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (lease_ && now >= lease_check) {
      lease_check = now + kLeaseCheck;
      auto held = lease_->hold();
      const bool holds = held && *held;
      if (holds != lead) {
        if (!holds) subscription_.reset();  // stops after the batch in hand
        set_lead(holds);
      }
      if (!holds)  // show how far the holder got
        if (auto saved = checkpoints_.load_checkpoint(kCheckpoint)) position_ = *saved;
    }
    if (lead) {
      if (subscription_ && !subscription_->running()) {  // a publish or a checkpoint failed
        subscription_.reset();
        retry_at = now + backoff;
        backoff = std::min(backoff * 2, kMaxBackoff);
      } else if (subscription_ && !failed_) {
        backoff = kFirstBackoff;
      }
      if (!subscription_ && now >= retry_at) {
        // Where the subscription resumes, so the first message names the event before it
        // (see the header comment); a checkpoint that cannot be read fails start() below too.
        if (auto saved = checkpoints_.load_checkpoint(kCheckpoint)) previous_ = std::max(*saved, es::Position{0});
        es::SubscriptionOptions so;
        so.name = kCheckpoint;
        so.batch_size = options_.batch_size;
        so.after_failure = "published again from the relay's checkpoint after a back-off";
        subscription_ = std::make_unique<es::Subscription>(
            store_, &checkpoints_, so,
            [this](std::span<const es::RecordedEvent> events, es::Position) { return on_batch(events); });
        if (auto started = subscription_->start()) {
          position_ = subscription_->position() - 1;
          recovered("relay", "start");
        } else {
          report_failure("relay", "start", started.error().message, "tried again after a back-off");
          subscription_.reset();
          retry_at = now + backoff;
          backoff = std::min(backoff * 2, kMaxBackoff);
        }
      }
    }
    if (thread_.pause(kTick)) break;
  }
  subscription_.reset();
  if (lease_) {
    if (lead) set_lead(false);
    lease_->release();
  }
}

}  // namespace orderflow::app::relay
