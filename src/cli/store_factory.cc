#include "cli/store_factory.h"

#include <filesystem>

namespace orderflow::cli {

Result<OpenStore> open_store(const StoreSpec& spec) {
  if (!spec.url.empty() && spec.url.rfind("sqlite:", 0) != 0)
    return fail(Errc::invalid_argument, "--store " + spec.url + " is not supported by this build");
  std::error_code ec;
  std::filesystem::create_directories(spec.data_dir, ec);
  if (ec) return fail(Errc::unavailable, "cannot create data directory " + spec.data_dir + ": " + ec.message());
  sqlite::SqliteEventStoreOptions options;
  options.path = (std::filesystem::path(spec.data_dir) / "events.db").string();
  options.pipeline = spec.pipeline;
  auto store = sqlite::SqliteEventStore::open(options);
  if (!store) return fail(store.error());
  return OpenStore{std::move(*store)};
}

std::string read_model_path(const StoreSpec& spec) {
  return (std::filesystem::path(spec.data_dir) / "readmodels.db").string();
}

}  // namespace orderflow::cli
