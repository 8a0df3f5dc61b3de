#include "bus/bus_under_test.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "cli/bus_factory.h"
#include "support/temp_dir.h"

namespace orderflow::testing {

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Starts `args` (args[0] looked up in PATH) as a child that is killed when this process dies:
// a test process that aborts (an ASan report, a crash) runs no destructor to stop the servers
// it started, which then outlived it with their temp dirs. The signal follows the thread that
// forked, the test's own. `quiet`: its output to /dev/null (a server outliving its test must
// not hold the test's output open, which keeps ctest waiting until its timeout).
pid_t spawn_tied(std::vector<std::string> args, bool quiet) {
  std::string path = args.front();
  if (path.find('/') == std::string::npos) {
    const std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
    for (std::size_t at = 0; at <= dirs.size();) {
      const auto end = std::min(dirs.find(':', at), dirs.size());
      if (auto candidate = dirs.substr(at, end - at) + "/" + args.front(); ::access(candidate.c_str(), X_OK) == 0) {
        path = candidate;
        break;
      }
      at = end + 1;
    }
  }
  if (::access(path.c_str(), X_OK) != 0) throw std::runtime_error("cannot run " + args.front());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {  // only async-signal-safe calls from here
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // it died before the line above
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    ::execv(path.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s));
}

// nats-server -js on a loopback port, its store in a temp dir that outlives its restarts.
class NatsBus final : public BusUnderTest {
 public:
  NatsBus() : port_(free_port()) { start(); }
  ~NatsBus() override {
    stop();
    if (nc_) natsConnection_Destroy(nc_);
    if (js_) jsCtx_Destroy(js_);
  }
  std::string name() const override { return "nats"; }
  std::string url() const override { return "nats://127.0.0.1:" + std::to_string(port_); }
  bool dedupes_by_id() const override { return true; }

  void start() override {
    const std::string port = std::to_string(port_), store = dir_.file("js"), log = dir_.file("nats.log");
    try {  // it logs to `log`
      pid_ = spawn_tied({"nats-server", "-a", "127.0.0.1", "-p", port, "-js", "-sd", store, "-l", log}, true);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string(e.what()) + " (apt install nats-server)");
    }
    for (int i = 0; i < 500 && !accepts(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  void stop() override {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::size_t count() override {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js(), "ORDERFLOW_EVENTS", nullptr, nullptr) != NATS_OK) return 0;
    std::size_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
  }

  std::vector<Received> read_all() override { return read_stream("ORDERFLOW_EVENTS"); }
  std::vector<Received> dead_letters() override { return read_stream("ORDERFLOW_EVENTS_DEAD_LETTERS"); }
  std::uint64_t acked(const std::string& consumer) override {
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, js(), "ORDERFLOW_EVENTS", consumer.c_str(), nullptr, nullptr) != NATS_OK) return 0;
    const auto floor = ci->AckFloor.Stream;
    jsConsumerInfo_Destroy(ci);
    return floor;
  }

 private:
  std::vector<Received> read_stream(const char* stream) {
    std::vector<Received> out;
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js(), stream, nullptr, nullptr) != NATS_OK) return out;
    const auto last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    for (std::uint64_t seq = 1; seq <= last; ++seq) {
      natsMsg* m = nullptr;
      check(js_GetMsg(&m, js(), stream, seq, nullptr, nullptr), "js_GetMsg");
      Received r;
      r.topic = natsMsg_GetSubject(m);
      r.body.assign(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
      const char** keys = nullptr;
      int n = 0;
      if (natsMsgHeader_Keys(m, &keys, &n) == NATS_OK) {
        for (int i = 0; i < n; ++i) {
          const char* v = nullptr;
          if (natsMsgHeader_Get(m, keys[i], &v) == NATS_OK) r.headers[keys[i]] = v;
        }
        free(static_cast<void*>(keys));
      }
      out.push_back(std::move(r));
      natsMsg_Destroy(m);
    }
    return out;
  }

  jsCtx* js() {
    if (!nc_) {
      check(natsConnection_ConnectTo(&nc_, url().c_str()), "connecting to nats-server");
      check(natsConnection_JetStream(&js_, nc_, nullptr), "JetStream");
    }
    return js_;
  }

  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// The categories of the Kafka cluster's topics: the relay's tests write the test
// categories, the bus-fed projector's the ones it folds, the bus-fed saga's its own too.
constexpr const char* kKafkaCategories[] = {"cart",    "invoice", "shipment", "order",
                                            "product", "account", "saga",     "deadletters"};

// Three brokers; the topics of the categories the tests write, 6 partitions each,
// replicated 3 times.
class KafkaBus final : public BusUnderTest {
 public:
  KafkaBus() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", err, sizeof err);  // no notice that this handle has no brokers
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) throw std::runtime_error(err);
    cluster_ = rd_kafka_mock_cluster_new(rk_, 3);
    if (!cluster_) throw std::runtime_error("cannot create the Kafka mock cluster");
    for (const char* category : kKafkaCategories)
      rd_kafka_mock_topic_create(cluster_, (std::string("orderflow.events.") + category).c_str(), 6, 3);
    rd_kafka_mock_topic_create(cluster_, "orderflow.dead-letters.orderflow-projector", 1, 3);  // the projector's
    rd_kafka_mock_topic_create(cluster_, "orderflow.dead-letters.orderflow-saga", 1, 3);       // the saga's
  }
  ~KafkaBus() override {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(rk_);
  }
  std::string name() const override { return "kafka"; }
  std::string url() const override { return std::string("kafka://") + rd_kafka_mock_cluster_bootstraps(cluster_); }
  bool dedupes_by_id() const override { return false; }
  void stop() override {
    for (int broker = 1; broker <= 3; ++broker) rd_kafka_mock_broker_set_down(cluster_, broker);
  }
  void start() override {
    for (int broker = 1; broker <= 3; ++broker) rd_kafka_mock_broker_set_up(cluster_, broker);
  }

  std::size_t count() override {
    Consumer c(bootstraps());
    std::size_t n = 0;
    for (const auto& p : c.partitions()) n += static_cast<std::size_t>(p.high - p.low);
    return n;
  }

  std::vector<Received> read_all() override {
    Consumer c(bootstraps());
    return read(c, c.partitions());
  }
  std::vector<Received> dead_letters() override {
    Consumer c(bootstraps());
    const char* topic = "orderflow.dead-letters.orderflow-projector";
    std::int64_t low = 0, high = 0;
    if (rd_kafka_query_watermark_offsets(c.rk, topic, 0, &low, &high, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error("Kafka: no watermarks for the dead letters");
    return read(c, {{topic, 0, low, high}});
  }
  std::uint64_t acked(const std::string& group) override {
    Consumer c(bootstraps(), group);  // asks the group's coordinator; joins nothing
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(48);
    for (const char* category : kKafkaCategories)
      for (int p = 0; p < 6; ++p)
        rd_kafka_topic_partition_list_add(list, (std::string("orderflow.events.") + category).c_str(), p);
    std::uint64_t sum = 0;
    if (rd_kafka_committed(c.rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
      for (int i = 0; i < list->cnt; ++i)
        if (list->elems[i].offset > 0) sum += static_cast<std::uint64_t>(list->elems[i].offset);
    rd_kafka_topic_partition_list_destroy(list);
    return sum;
  }

 private:
  struct Consumer;
  // A partition of a topic and its watermarks: the first offset it holds and the next.
  struct Partition {
    std::string topic;
    int partition;
    std::int64_t low, high;
  };
  // Every message of `partitions` (topic, partition, high watermark), from the beginning.
  static std::vector<Received> read(Consumer& c, const std::vector<Partition>& partitions) {
    std::vector<Received> out;
    for (const auto& [topic, partition, low, high] : partitions) {
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
      rd_kafka_assign(c.rk, list);
      rd_kafka_topic_partition_list_destroy(list);
      for (std::int64_t read = low; read < high;) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c.rk, 5000);
        if (!m) throw std::runtime_error("Kafka: a partition did not deliver its messages");
        if (!m->err) {
          Received r;
          r.topic = rd_kafka_topic_name(m->rkt);
          r.key.assign(static_cast<const char*>(m->key), m->key_len);
          r.body.assign(static_cast<const char*>(m->payload), m->len);
          rd_kafka_headers_t* hdrs = nullptr;
          if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name;
            const void* value;
            size_t size;
            for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
              r.headers[name].assign(static_cast<const char*>(value), size);
          }
          out.push_back(std::move(r));
          ++read;
        }
        rd_kafka_message_destroy(m);
      }
    }
    return out;
  }

  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

  struct Consumer {
    rd_kafka_t* rk = nullptr;
    explicit Consumer(const std::string& brokers, const std::string& group = "orderflow-test-reader") {
      char err[256];
      rd_kafka_conf_t* conf = rd_kafka_conf_new();
      rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
      rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
      rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
      if (!rk) throw std::runtime_error(err);
    }
    ~Consumer() {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
    // Every partition of the tests' topics.
    std::vector<Partition> partitions() {
      std::vector<Partition> out;
      for (const char* category : kKafkaCategories) {
        const std::string topic = std::string("orderflow.events.") + category;
        for (int p = 0; p < 6; ++p) {
          std::int64_t low = 0, high = 0;
          if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            throw std::runtime_error("Kafka: no watermarks for " + topic);
          out.push_back({topic, p, low, high});
        }
      }
      return out;
    }
  };

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

std::unique_ptr<sqlite::SqliteEventStore> open_sqlite_store(const std::string& path) {
  sqlite::SqliteEventStoreOptions o;
  o.path = path;
  auto opened = sqlite::SqliteEventStore::open(o);
  EXPECT_TRUE(opened) << opened.error().message;
  return opened ? std::move(*opened) : nullptr;
}

int spawn_serve(const std::string& data_dir, const std::string& roles, const std::string& bus_url) {
  return spawn_tied({ORDERFLOW_BIN, "serve", "--data", data_dir, "--listen", "127.0.0.1:0", "--roles", roles, "--bus",
                     bus_url, "--log-level", "warn"},
                    false);
}

std::unique_ptr<BusUnderTest> start_nats() { return std::make_unique<NatsBus>(); }

void make_nats_stream(const BusUnderTest& nats, const std::vector<std::string>& subjects, std::int64_t max_messages) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  check(natsConnection_ConnectTo(&nc, nats.url().c_str()), "connecting to nats-server");
  check(natsConnection_JetStream(&js, nc, nullptr), "JetStream");
  std::vector<const char*> list;
  for (const auto& s : subjects) list.push_back(s.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "ORDERFLOW_EVENTS";
  cfg.Subjects = list.data();
  cfg.SubjectsLen = static_cast<int>(list.size());
  cfg.Storage = js_FileStorage;
  cfg.MaxMsgs = max_messages;
  jsStreamInfo* info = nullptr;
  const natsStatus made = js_AddStream(&info, js, &cfg, nullptr, nullptr);
  jsStreamInfo_Destroy(info);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  check(made, "making the stream ORDERFLOW_EVENTS");
}
std::unique_ptr<BusUnderTest> start_kafka() { return std::make_unique<KafkaBus>(); }

std::unique_ptr<es::BusPublisher> publisher_for(const BusUnderTest& bus) {
  auto url = cli::parse_bus_url(bus.url());
  if (!url) throw std::runtime_error(url.error().message);
  return cli::open_bus(*url, cli::BusSpec{});
}

}  // namespace orderflow::testing
