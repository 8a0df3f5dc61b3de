#include "bus/nats/nats_consumer.h"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bus/nats/nats_common.h"
#include "core/log.h"

namespace orderflow::bus::nats {

struct NatsConsumer::Connection {
  natsOptions* options = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;
  std::unordered_map<std::uint64_t, natsMsg*> held;  // fetched, not yet acked/retried/dead-lettered
  std::uint64_t next_tag = 1;
  // The durable's cap on messages delivered and not acknowledged (<= 0: none). A fetch asks
  // for no more than it leaves room for: a pull for more waits out its whole wait.
  std::int64_t max_ack_pending = 0;
  // The stream sequence of the first message not yet delivered to this consumer: a message
  // past it tells of messages removed before they were delivered, or of another subject's.
  std::uint64_t next_sequence = 1;
  // Sequences given back by retry() and not delivered again yet: the stream's limits may
  // remove them before they come back. Looked at by a fetch at most every kRetriedCheck.
  std::set<std::uint64_t> retried;
  std::chrono::steady_clock::time_point retried_checked{};

  ~Connection() {
    for (auto& [tag, msg] : held) natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(options);
  }
  natsMsg* take(std::uint64_t tag) {
    auto it = held.find(tag);
    if (it == held.end()) return nullptr;
    natsMsg* m = it->second;
    held.erase(it);
    return m;
  }
};

namespace {

constexpr std::chrono::milliseconds kRetriedCheck{250};

// The stream sequence of a message delivered by JetStream (0 if its metadata cannot be read).
std::uint64_t sequence_of(natsMsg* m) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, m) != NATS_OK) return 0;
  const std::uint64_t sequence = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  return sequence;
}

// What the stream holds: from its first message's sequence (past its last when it holds
// none; 0 when it never held one), less the messages removed from between (by hand, or by a
// limit per subject), ascending.
struct Held {
  std::uint64_t first = 0;
  std::vector<std::uint64_t> removed;

  // Is a message of [from, to) removed from between?
  bool removed_within(std::uint64_t from, std::uint64_t to) const {
    const auto it = std::lower_bound(removed.begin(), removed.end(), from);
    return it != removed.end() && *it < to;
  }
};

// `removed`: with the list of messages removed from between (else left empty).
Result<Held> held_by(jsCtx* js, const std::string& stream, bool removed) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Info.DeletedDetails = removed;
  jsStreamInfo* info = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), &o, &err); s != NATS_OK)
    return nats_error("reading the stream " + stream, s);
  Held held{.first = info->State.FirstSeq, .removed = {}};
  if (info->State.Deleted)
    held.removed.assign(info->State.Deleted, info->State.Deleted + std::max(info->State.DeletedLen, 0));
  jsStreamInfo_Destroy(info);
  std::sort(held.removed.begin(), held.removed.end());
  return held;
}

}  // namespace

NatsConsumer::NatsConsumer(NatsConsumerOptions options) : options_(std::move(options)) {}

NatsConsumer::~NatsConsumer() = default;

Result<void> NatsConsumer::connect() {
  auto c = std::make_unique<Connection>();
  OF_ASSIGN_OR_RETURN(auto options, connection_options(options_.servers));
  c->options = options;
  if (natsStatus s = natsConnection_Connect(&c->nc, c->options); s != NATS_OK) return nats_error("connecting", s);
  if (natsStatus s = natsConnection_JetStream(&c->js, c->nc, nullptr); s != NATS_OK)
    return nats_error("JetStream context", s);
  if (auto r = ensure_stream(c->js, options_.stream, options_.subject_prefix + ".>", options_.replicas); !r) return r;
  if (auto r = ensure_stream(c->js, options_.stream + "_DEAD_LETTERS", options_.dead_letter_prefix + ".>",
                             options_.replicas);
      !r)
    return r;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.AckWait = std::chrono::nanoseconds(options_.ack_wait).count();
  so.Config.DeliverPolicy = js_DeliverAll;
  jsErrCode err = static_cast<jsErrCode>(0);
  const std::string subjects = options_.subject_prefix + ".>";
  if (natsStatus s = js_PullSubscribe(&c->sub, c->js, subjects.c_str(), options_.durable.c_str(), nullptr, &so, &err);
      s != NATS_OK)
    return nats_error("subscribing the durable consumer " + options_.durable, s);
  jsConsumerInfo* ci = nullptr;
  if (natsStatus s = js_GetConsumerInfo(&ci, c->js, options_.stream.c_str(), options_.durable.c_str(), nullptr, &err);
      s != NATS_OK)
    return nats_error("reading the durable consumer " + options_.durable, s);
  c->max_ack_pending = ci->Config ? ci->Config->MaxAckPending : 0;
  // Everything past the ack floor is to be delivered (again); a new durable starts at the
  // stream's sequence 1 (JetStream starts it at the first message the stream still holds).
  const std::uint64_t unacked = ci->Delivered.Consumer == 0 ? 1 : ci->AckFloor.Stream + 1;
  const std::uint64_t delivered = ci->Delivered.Stream;
  jsConsumerInfo_Destroy(ci);
  // (A message delivered and not acknowledged that is removed from between others before this
  // connects is not seen here: the server drops it from the durable's pending ones and moves
  // the ack floor past it. A later event of its stream then waits for it and is dead-lettered,
  // and the retry of that dead letter applies the stream from the store.)
  OF_ASSIGN_OR_RETURN(const auto held, held_by(c->js, options_.stream, false));
  if (held.first > unacked) note_removed(unacked, std::to_string(held.first));
  c->next_sequence = std::max(delivered + 1, held.first);
  conn_ = std::move(c);
  return {};
}

// Whatever is there at once, up to `max`; else the first message to come within `wait`
// and then whatever came with it: a message waits for no batch to fill. The library's
// fetch does exactly that, telling its own pull requests' answers from those of earlier
// ones (two pulls of our own, one "no wait" then one that waits, took the first pull's
// late "no messages" answer for the second's: an idle consumer spun, ~700 pulls a second),
// as long as it asks for no more than the durable's max_ack_pending leaves room for.
Result<std::vector<es::BusDelivery>> NatsConsumer::fetch(std::size_t max, std::chrono::milliseconds wait) {
  if (!conn_) OF_RETURN_IF_ERROR(connect());
  Connection& c = *conn_;
  std::vector<es::BusDelivery> out;
  natsMsgList list{};
  jsErrCode err = static_cast<jsErrCode>(0);
  auto batch = static_cast<std::int64_t>(max);
  if (c.max_ack_pending > 0) batch = std::min(batch, c.max_ack_pending - static_cast<std::int64_t>(c.held.size()));
  natsStatus s = natsSubscription_Fetch(&list, c.sub, static_cast<int>(std::max<std::int64_t>(batch, 1)),
                                        std::max<std::int64_t>(wait.count(), 1), &err);
  if (s != NATS_OK) {
    natsMsgList_Destroy(&list);
    if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) return out;
    return nats_error("fetching", s);
  }
  out.reserve(static_cast<std::size_t>(list.Count));
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;  // the sequences skipped, [from, to)
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* m = list.Msgs[i];
    list.Msgs[i] = nullptr;  // ours now
    es::BusDelivery d;
    d.topic = natsMsg_GetSubject(m);
    if (const char* data = natsMsg_GetData(m)) d.body.assign(data, static_cast<std::size_t>(natsMsg_GetDataLength(m)));
    const char** keys = nullptr;
    int n = 0;
    if (natsMsgHeader_Keys(m, &keys, &n) == NATS_OK) {
      for (int k = 0; k < n; ++k) {
        const char* v = nullptr;
        if (natsMsgHeader_Get(m, keys[k], &v) == NATS_OK && v) d.headers.emplace_back(keys[k], v);
      }
      free(static_cast<void*>(keys));
    }
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      d.attempt = static_cast<int>(meta->NumDelivered);
      const std::uint64_t sequence = meta->Sequence.Stream;
      d.id = std::string(meta->Stream ? meta->Stream : "") + ":" + std::to_string(sequence);
      if (sequence > c.next_sequence) gaps.emplace_back(c.next_sequence, sequence);
      c.next_sequence = std::max(c.next_sequence, sequence + 1);
      c.retried.erase(sequence);
      jsMsgMetaData_Destroy(meta);
    }
    d.tag = c.next_tag++;
    c.held.emplace(d.tag, m);
    out.push_back(std::move(d));
  }
  natsMsgList_Destroy(&list);
  // Skipped sequences are another subject's messages (a stream the operator made wider) or
  // messages removed unread: the oldest, by the stream's limits (its first message is past
  // the gap's start), or from between (by hand, or a limit per subject: the stream lists
  // them). Not knowing (the server did not answer) counts as gone: reading the store again
  // costs time, skipping events loses them. Retried messages not delivered again are looked
  // for the same way, less often (a retry comes back after its delay; one removed meanwhile
  // never does). They stay looked for until they come back, so a stream that cannot be read
  // now counts against a gap only, which a later fetch cannot see again.
  const auto now = std::chrono::steady_clock::now();
  const bool retried_due = !c.retried.empty() && now - c.retried_checked >= kRetriedCheck;
  if (retried_due) c.retried_checked = now;
  if (gaps.empty() && !retried_due) return out;
  std::uint64_t from = gaps.empty() ? std::numeric_limits<std::uint64_t>::max() : gaps.front().first;
  if (retried_due) from = std::min(from, *c.retried.begin());
  const auto held = held_by(c.js, options_.stream, true);
  if (!held) {
    if (!gaps.empty()) note_removed(gaps.front().first, "unknown (" + held.error().message + ")");
    return out;
  }
  if (held->first > from) {
    note_removed(from, std::to_string(held->first));
    c.retried.erase(c.retried.begin(), c.retried.lower_bound(held->first));  // gone: read from the store
    return out;
  }
  bool removed =
      std::any_of(gaps.begin(), gaps.end(), [&](const auto& g) { return held->removed_within(g.first, g.second); });
  if (retried_due)
    std::erase_if(c.retried, [&](std::uint64_t sequence) {
      const bool gone = held->removed_within(sequence, sequence + 1);
      removed = removed || gone;
      return gone;
    });
  if (removed) note_removed(from, std::to_string(held->first));
  return out;
}

Result<void> NatsConsumer::ack(std::span<const std::uint64_t> tags) {
  if (!conn_) return fail(Errc::unavailable, "NATS: not connected");
  bool sent = false;
  for (auto tag : tags) {
    natsMsg* m = conn_->take(tag);
    if (!m) continue;
    natsStatus s = natsMsg_Ack(m, nullptr);
    natsMsg_Destroy(m);
    if (s != NATS_OK) return nats_error("acknowledging", s);
    sent = true;
  }
  // One round trip for them all: once the server answers the flush it has read every ack
  // before it (its consumer counts them a moment later: backlog() may lag by that much).
  if (sent)
    if (natsStatus s = natsConnection_FlushTimeout(conn_->nc, 5000); s != NATS_OK)
      return nats_error("acknowledging", s);
  return {};
}

Result<void> NatsConsumer::retry(std::uint64_t tag, std::chrono::milliseconds delay) {
  if (!conn_) return fail(Errc::unavailable, "NATS: not connected");
  natsMsg* m = conn_->take(tag);
  if (!m) return {};
  if (const auto sequence = sequence_of(m)) conn_->retried.insert(sequence);
  natsStatus s = natsMsg_NakWithDelay(m, delay.count(), nullptr);
  natsMsg_Destroy(m);
  if (s != NATS_OK) return nats_error("asking for redelivery", s);
  return {};
}

Result<void> NatsConsumer::dead_letter(std::uint64_t tag, const std::string& reason) {
  if (!conn_) return fail(Errc::unavailable, "NATS: not connected");
  Connection& c = *conn_;
  auto it = c.held.find(tag);
  if (it == c.held.end()) return {};
  natsMsg* original = it->second;
  const std::string subject = options_.dead_letter_prefix + "." + options_.durable;
  natsMsg* dl = nullptr;
  const char* data = natsMsg_GetData(original);
  natsStatus s = natsMsg_Create(&dl, subject.c_str(), nullptr, data ? data : "", natsMsg_GetDataLength(original));
  const char** keys = nullptr;
  int n = 0;
  if (s == NATS_OK && natsMsgHeader_Keys(original, &keys, &n) == NATS_OK) {
    for (int k = 0; k < n && s == NATS_OK; ++k) {
      const char* v = nullptr;
      if (natsMsgHeader_Get(original, keys[k], &v) == NATS_OK && v) s = natsMsgHeader_Set(dl, keys[k], v);
    }
    free(static_cast<void*>(keys));
  }
  if (s == NATS_OK) s = natsMsgHeader_Set(dl, "orderflow-dead-letter-reason", reason.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(dl, "orderflow-dead-letter-subject", natsMsg_GetSubject(original));
  jsPubAck* pa = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (s == NATS_OK) s = js_PublishMsg(&pa, c.js, dl, nullptr, &err);
  jsPubAck_Destroy(pa);
  natsMsg_Destroy(dl);
  if (s != NATS_OK) return nats_error("publishing a dead letter to " + subject, s);
  const std::uint64_t tags[] = {tag};
  return ack(tags);
}

void NatsConsumer::note_removed(std::uint64_t from, const std::string& first) {
  dropped_ = true;
  log::warn("nats", "the stream removed messages this consumer had not had: their events are read from the store",
            {{"stream", options_.stream},
             {"durable", options_.durable},
             {"from_sequence", std::to_string(from)},
             {"first_held", first}});
}

std::vector<std::string> NatsConsumer::dropped() {
  if (!dropped_) return {};
  dropped_ = false;
  return {options_.subject_prefix + ".>"};
}

Result<std::uint64_t> NatsConsumer::backlog() {
  if (!conn_) OF_RETURN_IF_ERROR(connect());
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (natsStatus s =
          js_GetConsumerInfo(&ci, conn_->js, options_.stream.c_str(), options_.durable.c_str(), nullptr, &err);
      s != NATS_OK)
    return nats_error("reading the durable consumer " + options_.durable, s);
  const std::uint64_t pending =
      ci->NumPending + static_cast<std::uint64_t>(std::max<std::int64_t>(0, ci->NumAckPending));
  jsConsumerInfo_Destroy(ci);
  return pending;
}

}  // namespace orderflow::bus::nats
