#include "bus/nats/nats_publisher.h"
#include "bus/nats/nats_common.h"
#include "core/mutex.h"

#include <nats/nats.h>

#include <atomic>
#include <mutex>

namespace orderflow::bus::nats {

// libnats objects of one connection, and what the acknowledgments of the batch in flight said.
struct NatsPublisher::Connection {
  natsOptions* options = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<std::size_t> failed{0};
  Mutex mu;
  std::string first_error GUARDED_BY(mu);  // of the batch in flight

  ~Connection() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(options);
  }
};

NatsPublisher::NatsPublisher(NatsOptions options) : options_(std::move(options)) {}

NatsPublisher::~NatsPublisher() = default;

Result<void> NatsPublisher::connect() {
  auto c = std::make_unique<Connection>();
  OF_ASSIGN_OR_RETURN(auto options, connection_options(options_.servers));
  c->options = options;
  natsStatus s = NATS_OK;
  if (s = natsConnection_Connect(&c->nc, c->options); s != NATS_OK) return nats_error("connecting", s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options_.ack_timeout_ms;
  jo.PublishAsync.MaxPending = 4096;
  jo.PublishAsync.AckHandler = [](jsCtx*, natsMsg* msg, jsPubAck*, jsPubAckErr* pae, void* closure) {
    if (pae) {
      auto* conn = static_cast<Connection*>(closure);
      MutexLock lk(conn->mu);
      if (conn->failed++ == 0)
        conn->first_error = std::string(natsStatus_GetText(pae->Err)) + (pae->ErrText ? std::string(": ") + pae->ErrText : "");
    }
    natsMsg_Destroy(msg);
  };
  jo.PublishAsync.AckHandlerClosure = c.get();
  if (s = natsConnection_JetStream(&c->js, c->nc, &jo); s != NATS_OK) return nats_error("JetStream context", s);

  if (auto r = ensure_stream(c->js, options_.stream, options_.subject_prefix + ".>", options_.replicas); !r) return r;
  conn_ = std::move(c);
  return {};
}

Result<void> NatsPublisher::publish(std::span<const es::BusMessage> messages) {
  if (!conn_)
    if (auto connected = connect(); !connected) return connected;
  Connection& c = *conn_;
  c.failed = 0;
  {
    MutexLock lk(c.mu);
    c.first_error.clear();
  }
  for (const auto& m : messages) {
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, m.topic.c_str(), nullptr, m.body.data(), static_cast<int>(m.body.size()));
    for (const auto& [name, value] : m.headers)
      if (s == NATS_OK) s = natsMsgHeader_Set(msg, name.c_str(), value.c_str());
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = m.id.c_str();
    if (s == NATS_OK) s = js_PublishMsgAsync(c.js, &msg, &po);
    natsMsg_Destroy(msg);  // null once the library took it
    if (s != NATS_OK) return nats_error("publishing to " + m.topic, s);
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = options_.ack_timeout_ms;
  if (natsStatus s = js_PublishAsyncComplete(c.js, &wait); s != NATS_OK) {
    // Those still unacknowledged are dropped here; the retry sends them again.
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, c.js) == NATS_OK) natsMsgList_Destroy(&pending);
    return nats_error("waiting for acknowledgments", s);
  }
  if (c.failed > 0) {
    MutexLock lk(c.mu);
    return fail(Errc::unavailable, "NATS: " + std::to_string(c.failed.load()) + " of " +
                                       std::to_string(messages.size()) + " messages refused: " + c.first_error);
  }
  return {};
}

}  // namespace orderflow::bus::nats
