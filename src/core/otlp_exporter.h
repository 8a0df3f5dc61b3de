// Sends finished spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding
// (https://opentelemetry.io/docs/specs/otlp/#otlphttp): batches POSTed to ENDPOINT/v1/traces
// from a background thread, with libcurl (a kept-alive connection, timeouts, https when
// asked, none of it ours to get wrong). No OpenTelemetry SDK is packaged in Debian.
//
// What is promised:
// - take() never waits on the network: it queues the span, or drops and counts it when
//   max_queue spans are already waiting (a slow or dead collector costs spans, never
//   request time);
// - a batch leaves when max_batch spans wait or every `interval`, whichever comes first;
// - a batch the collector does not take (no connection, a timeout, a status other than
//   2xx) is dropped and counted, not retried: a collector that is down loses what it missed;
//   the failure is logged through core/failures.h (rate-limited) and counted;
// - the destructor sends what is queued, until a send fails, and counts the rest dropped.
//
// Thread safety: take() and counts() may be called from any thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <thread>

#include "core/mutex.h"
#include "core/metric.h"
#include "core/trace.h"

namespace orderflow {

struct OtlpOptions {
  std::string endpoint;  // "http://HOST:PORT" (or https); spans go to ENDPOINT/v1/traces
  std::string service_name = "orderflow";  // the resource's service.name
  std::string service_version;             // the scope's version
  std::size_t max_queue = 4096;            // spans waiting at most; more are dropped
  std::size_t max_batch = 512;             // spans per request at most
  std::chrono::milliseconds interval{500};  // a partial batch waits at most this long
  std::chrono::milliseconds timeout{2000};  // per request, connecting included
};

// The ExportTraceServiceRequest of `spans` in the OTLP JSON encoding: ids in hex, times in
// nanoseconds as decimal strings, enums as numbers, 64-bit integers as strings.
std::string otlp_json(std::span<const Span> spans, const OtlpOptions& options);

class OtlpExporter final : public SpanSink {
 public:
  // REQUIRES: options.endpoint starts with http:// or https://.
  explicit OtlpExporter(OtlpOptions options);
  ~OtlpExporter() override;
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  void take(Span span) override;

  struct Counts {
    std::uint64_t exported = 0;          // spans the collector took
    std::uint64_t dropped_queue_full = 0;
    std::uint64_t dropped_export_failed = 0;  // in batches the collector did not take
    std::uint64_t export_failures = 0;        // requests that failed
  };
  Counts counts() const;

 private:
  void loop();
  bool send(std::span<const Span> batch);  // true: the collector took it

  OtlpOptions options_;
  std::string url_;
  void* curl_;  // CURL*, used by the exporter's thread only
  Counter exported_, dropped_queue_full_, dropped_export_failed_, export_failures_;

  Mutex mu_;
  CondVar cv_;  // a batch is full, or stopping
  std::deque<Span> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace orderflow
