#include "core/otlp_exporter.h"

#include <curl/curl.h>
#include <boost/json.hpp>
#include <vector>

#include "core/failures.h"
#include "core/named_thread.h"

namespace orderflow {

namespace {

namespace json = boost::json;

json::object attribute(const std::string& key, const Span::Value& value) {
  json::object v;
  if (const auto* s = std::get_if<std::string>(&value)) v["stringValue"] = *s;
  else v["intValue"] = std::to_string(std::get<std::int64_t>(value));  // int64: a string in JSON
  return json::object{{"key", key}, {"value", std::move(v)}};
}

json::object span_json(const Span& s) {
  json::object o{{"traceId", s.context.trace_id},
                 {"spanId", s.context.parent_id},
                 {"name", s.name},
                 {"kind", static_cast<int>(s.kind)},
                 {"startTimeUnixNano", std::to_string(s.start_unix_ns)},
                 {"endTimeUnixNano", std::to_string(s.end_unix_ns)}};
  if (!s.parent_span_id.empty()) o["parentSpanId"] = s.parent_span_id;
  json::array attributes;
  for (const auto& [key, value] : s.attributes) attributes.push_back(attribute(key, value));
  if (!attributes.empty()) o["attributes"] = std::move(attributes);
  // STATUS_CODE_ERROR = 2; UNSET (0) is left out, as the JSON mapping leaves defaults.
  if (s.error) o["status"] = json::object{{"code", 2}, {"message", s.status_message}};
  return o;
}

std::size_t discard_body(char*, std::size_t size, std::size_t n, void*) { return size * n; }

}  // namespace

std::string otlp_json(std::span<const Span> spans, const OtlpOptions& options) {
  json::array out;
  for (const auto& s : spans) out.push_back(span_json(s));
  json::object scope{{"name", "orderflow"}};
  if (!options.service_version.empty()) scope["version"] = options.service_version;
  json::object resource{{"attributes", json::array{attribute("service.name", options.service_name)}}};
  json::object request{
      {"resourceSpans",
       json::array{json::object{{"resource", std::move(resource)},
                                {"scopeSpans", json::array{json::object{{"scope", std::move(scope)},
                                                                        {"spans", std::move(out)}}}}}}}};
  return json::serialize(request);
}

OtlpExporter::OtlpExporter(OtlpOptions options)
    : options_(std::move(options)), url_(options_.endpoint), curl_(nullptr) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  url_ += "/v1/traces";
  curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = curl_easy_init();
  thread_ = named_thread("of-otlp", [this] { loop(); });
}

OtlpExporter::~OtlpExporter() {
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

void OtlpExporter::take(Span span) {
  std::size_t queued;
  {
    MutexLock lk(mu_);
    if (queue_.size() >= options_.max_queue) {
      dropped_queue_full_.add();
      return;
    }
    queue_.push_back(std::move(span));
    queued = queue_.size();
  }
  if (queued == options_.max_batch) cv_.notify_one();
}

OtlpExporter::Counts OtlpExporter::counts() const {
  return {exported_.value(), dropped_queue_full_.value(), dropped_export_failed_.value(), export_failures_.value()};
}

void OtlpExporter::loop() {
  std::vector<Span> batch;
  bool failed_while_stopping = false;
  for (;;) {
    bool stopping;
    {
      MutexLock lk(mu_);
      cv_.wait_for(mu_, options_.interval, [&]() REQUIRES(mu_) { return stopping_ || queue_.size() >= options_.max_batch; });
      stopping = stopping_;
      if (stopping && (queue_.empty() || failed_while_stopping)) {
        dropped_export_failed_.add(queue_.size());
        return;
      }
      const auto n = std::min(queue_.size(), options_.max_batch);
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    if (batch.empty()) continue;
    if (!send(batch)) failed_while_stopping = stopping;
    batch.clear();
  }
}

bool OtlpExporter::send(std::span<const Span> batch) {
  auto* curl = static_cast<CURL*>(curl_);
  const auto body = otlp_json(batch, options_);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  // No "Expect: 100-continue" (libcurl's default for large bodies): a collector that does
  // not answer it would cost each batch a second's wait.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: other threads run
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (rc == CURLE_OK && status >= 200 && status < 300) {
    exported_.add(batch.size());
    recovered("tracing", "export");
    return true;
  }
  export_failures_.add();
  dropped_export_failed_.add(batch.size());
  report_failure("tracing", "export",
                 url_ + ": " + (rc != CURLE_OK ? std::string(curl_easy_strerror(rc)) : "HTTP " + std::to_string(status)),
                 std::to_string(batch.size()) + " spans dropped; the next batch is sent as usual");
  return false;
}

}  // namespace orderflow
