// Event decoding with upcasters: a stored event (type, schema_version, data) is read as the
// stores read it, through an UpcasterRegistry, then decoded by the codec. The first byte
// picks the event type (every type of every aggregate, then the saga's own records) and whether it is stored at schema 0,
// which an upcaster lifts to 1 by taking the fields out of an envelope, as a real schema change would; the rest
// is the data. Whatever decodes must encode and decode again to the same JSON.
#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "codec/domain_codec.h"
#include "es/upcaster.h"

namespace {

using namespace orderflow;

using Decode = bool (*)(const std::string& type, const std::string& data);

// Decodes `data` as an event of `Event`; if it decodes, the round trip must hold.
template <class Event>
bool decode_round_trip(const std::string& type, const std::string& data) {
  auto e = codec::decode_event<Event>(type, data);
  if (!e) return false;
  const std::string once = codec::encode_event(*e);
  auto again = codec::decode_event<Event>(type, once);
  if (!again || codec::encode_event(*again) != once) std::abort();
  return true;
}

template <class Event>
void add_types(std::vector<std::pair<std::string, Decode>>& out) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (out.emplace_back(event_type_name(Event(std::in_place_index<I>)), &decode_round_trip<Event>), ...);
  }(std::make_index_sequence<std::variant_size_v<Event>>());
}

const std::vector<std::pair<std::string, Decode>>& types() {
  static const auto all = [] {
    std::vector<std::pair<std::string, Decode>> out;
    add_types<domain::product::Event>(out);
    add_types<domain::account::Event>(out);
    add_types<domain::order::Event>(out);
    // Appended after the aggregates' types, so a seed's first byte keeps naming its type.
    add_types<domain::saga::Event>(out);
    add_types<domain::saga::DeadLetterEvent>(out);
    return out;
  }();
  return all;
}

// Schema 0 of every type kept its fields in an envelope, {"fields": {…}}; schema 1 is them alone.
const es::UpcasterRegistry& upcasters() {
  static const es::UpcasterRegistry registry = [] {
    es::UpcasterRegistry r;
    for (const auto& [type, decode] : types())
      r.add(type, 0, [](std::string_view data) -> Result<std::string> {
        boost::system::error_code ec;
        auto v = boost::json::parse(data, ec);
        if (ec || !v.is_object()) return fail(Errc::corrupt, "not a JSON object");
        const auto* fields = v.as_object().if_contains("fields");
        if (!fields || !fields->is_object()) return fail(Errc::corrupt, "no fields object");
        return boost::json::serialize(*fields);
      });
    return r;
  }();
  return registry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& [type, decode] = types()[(data[0] >> 1) % types().size()];
  es::RecordedEvent e;
  e.type = type;
  e.schema_version = data[0] & 1 ? 0 : codec::kEventSchemaVersion;
  e.data.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (!upcasters().upcast(e)) return 0;
  if (e.schema_version != codec::kEventSchemaVersion) std::abort();
  decode(e.type, e.data);
  return 0;
}
