#include "app/projections/documents.h"

#include <charconv>
#include <string_view>

#include "core/time.h"

namespace orderflow::app::projections {

namespace {

// Writes one JSON value straight into a string. A document is rendered for every row a
// projection saves, and building a Boost.JSON DOM first cost more than the SQL insert.
// Output as Boost.JSON serialises it: no spaces, fields in the order written.
class JsonWriter {
 public:
  JsonWriter() { out_.reserve(512); }

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array(std::string_view key) { return name(key).open('['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& field(std::string_view key, std::string_view value) {
    name(key);
    string(value);
    after_name_ = false;
    return *this;
  }
  JsonWriter& field(std::string_view key, std::int64_t value) {
    name(key);
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out_.append(buf, end);
    after_name_ = false;
    return *this;
  }

  std::string take() { return std::move(out_); }

 private:
  JsonWriter& open(char c) {
    if (!after_name_) separate();
    after_name_ = false;
    out_ += c;
    first_ = true;
    return *this;
  }
  JsonWriter& close(char c) {
    out_ += c;
    first_ = false;
    return *this;
  }
  // Keys are our own literals: nothing in them needs escaping.
  JsonWriter& name(std::string_view key) {
    separate();
    out_ += '"';
    out_ += key;
    out_ += "\":";
    after_name_ = true;
    return *this;
  }
  void separate() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  void string(std::string_view s) {
    out_ += '"';
    std::size_t plain = 0;  // start of the run not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s.data() + plain, i - plain);
      escape(c);
      plain = i + 1;
    }
    out_.append(s.data() + plain, s.size() - plain);
    out_ += '"';
  }
  void escape(unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    switch (c) {
      case '"': out_ += "\\\""; break;
      case '\\': out_ += "\\\\"; break;
      case '\b': out_ += "\\b"; break;
      case '\f': out_ += "\\f"; break;
      case '\n': out_ += "\\n"; break;
      case '\r': out_ += "\\r"; break;
      case '\t': out_ += "\\t"; break;
      default:
        out_ += "\\u00";
        out_ += kHex[c >> 4];
        out_ += kHex[c & 0xf];
    }
  }

  std::string out_;
  bool first_ = true;        // nothing written yet in the innermost object or array
  bool after_name_ = false;  // a key was written: its value follows without a comma
};

}  // namespace

std::string order_document(const domain::order::State& s, es::StreamVersion version) {
  JsonWriter w;
  w.begin_object().field("order_id", s.order_id).field("customer_id", s.customer_id).begin_array("items");
  for (const auto& l : s.items)
    w.begin_object()
        .field("product_id", l.product_id)
        .field("quantity", l.quantity)
        .field("unit_price_cents", l.unit_price_cents)
        .field("line_total_cents", l.line_total_cents)
        .end_object();
  w.end_array()
      .field("total_cents", s.total_cents)
      .field("status", to_string(s.status))
      .field("payment_status", to_string(s.payment_status))
      .field("shipping_status", to_string(s.shipping_status));
  if (s.cancellation_reason) w.field("cancellation_reason", *s.cancellation_reason);
  if (s.shipping_address) w.field("shipping_address", *s.shipping_address);
  w.field("created_at", format_rfc3339_ms(s.created_at_ms))
      .field("updated_at", format_rfc3339_ms(s.updated_at_ms))
      .field("version", version.value())
      .end_object();
  return w.take();
}

std::string product_document(const domain::product::State& s, es::StreamVersion version) {
  return JsonWriter()
      .begin_object()
      .field("product_id", s.product_id)
      .field("name", s.name)
      .field("unit_price_cents", s.unit_price_cents)
      .field("on_hand", s.on_hand)
      .field("reserved", s.reserved)
      .field("available", s.available())
      .field("version", version.value())
      .end_object()
      .take();
}

std::string account_document(const domain::account::State& s, es::StreamVersion version) {
  return JsonWriter()
      .begin_object()
      .field("account_id", s.account_id)
      .field("owner", s.owner)
      .field("balance_cents", s.balance_cents)
      .field("version", version.value())
      .end_object()
      .take();
}

}  // namespace orderflow::app::projections
