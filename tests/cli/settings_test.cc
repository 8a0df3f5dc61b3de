#include "cli/settings.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cli/commands.h"
#include "support/temp_dir.h"

namespace orderflow::cli {
namespace {

// Sets an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

// The whole command line of the binary, parsed and resolved as `orderflow ARGS…` would be,
// without running the subcommand.
struct CommandLine {
  CLI::App app{"orderflow", "orderflow"};
  Settings settings;
  Action action;
  std::optional<int> stop;
  std::string error;  // what was logged, as the result of Settings::resolve

  explicit CommandLine(std::vector<std::string> args, bool all = false) {
    add_subcommands(app, settings, action);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    auto r = settings.resolve(all);
    if (!r) error = r.error().message;
  }

  const Setting& setting(const std::string& command, const std::string& key) const {
    for (const auto& s : settings.settings())
      if (s.key == key && (command.empty() || s.command->get_name() == command)) return s;
    throw std::runtime_error("no setting " + key);
  }
};

class SettingsTest : public ::testing::Test {
 protected:
  std::string write_config(const std::string& text) {
    auto path = dir_.file("orderflow.toml");
    std::ofstream(path) << text;
    return path;
  }

  testing::TempDir dir_;
};

TEST_F(SettingsTest, EachSettingGetsItsFlagKeyAndVariableFromItsName) {
  CommandLine cl({"serve"});
  const auto& s = cl.setting("serve", "serve.max_connections_per_ip");
  EXPECT_EQ(s.option->get_name(), "--max-connections-per-ip");
  EXPECT_EQ(s.env, "ORDERFLOW_SERVE_MAX_CONNECTIONS_PER_IP");
  EXPECT_EQ(cl.setting("append", "bench.append.payload_bytes").env, "ORDERFLOW_BENCH_APPEND_PAYLOAD_BYTES");
  EXPECT_EQ(cl.setting("serve", "data").env, "ORDERFLOW_DATA");  // shared: a top-level key
}

TEST_F(SettingsTest, AFlagBeatsTheEnvironmentWhichBeatsTheFileWhichBeatsTheDefault) {
  auto file = write_config("[serve]\nlisten = \"127.0.0.1:1001\"\nio_threads = 3\nlog_level = \"warn\"\n");
  ScopedEnv listen("ORDERFLOW_SERVE_LISTEN", "127.0.0.1:1002");
  ScopedEnv threads("ORDERFLOW_SERVE_IO_THREADS", "5");
  CommandLine cl({"serve", "--config", file, "--listen", "127.0.0.1:1003"});
  ASSERT_EQ(cl.error, "");

  const auto& listen_setting = cl.setting("serve", "serve.listen");
  EXPECT_EQ(listen_setting.value(), "127.0.0.1:1003");
  EXPECT_EQ(listen_setting.source.kind, SettingSource::flag);
  const auto& threads_setting = cl.setting("serve", "serve.io_threads");
  EXPECT_EQ(threads_setting.value(), "5");
  EXPECT_EQ(threads_setting.source.kind, SettingSource::environment);
  EXPECT_EQ(threads_setting.source.where, "ORDERFLOW_SERVE_IO_THREADS");
  const auto& level = cl.setting("serve", "serve.log_level");
  EXPECT_EQ(level.value(), "warn");
  EXPECT_EQ(level.source.kind, SettingSource::file);
  EXPECT_EQ(level.source.where, file + " line 4");
  const auto& format = cl.setting("serve", "serve.log_format");
  EXPECT_EQ(format.value(), "text");
  EXPECT_EQ(format.source.kind, SettingSource::default_value);
}

TEST_F(SettingsTest, ORDERFLOW_CONFIGNamesTheFileWhenNoFlagDoes) {
  auto file = write_config("data = \"/srv/orderflow\"\n");
  ScopedEnv config("ORDERFLOW_CONFIG", file);
  CommandLine cl({"verify"});
  ASSERT_EQ(cl.error, "");
  EXPECT_EQ(cl.setting("verify", "data").value(), "/srv/orderflow");
}

TEST_F(SettingsTest, ASharedKeyReachesEverySubcommandThatOpensTheStoreButNotTheBenchmarks) {
  auto file = write_config("data = \"/srv/orderflow\"\nstore = \"\"\n");
  for (const char* command : {"serve", "verify", "migrate"}) {
    CommandLine cl({command, "--config", file});
    ASSERT_EQ(cl.error, "");
    EXPECT_EQ(cl.setting(command, "data").value(), "/srv/orderflow") << command;
  }
  CommandLine bench({"bench", "append", "--config", file});
  ASSERT_EQ(bench.error, "");
  EXPECT_EQ(bench.setting("append", "bench.append.data").value(), "./orderflow-bench");
}

// What `serve --config FILE` says of a file holding `text`, with FILE's name as "FILE".
std::string error_for_serve(const std::string& file, const std::string& text) {
  std::ofstream(file) << text;
  CommandLine cl({"serve", "--config", file});
  auto error = cl.error;
  if (error.starts_with(file)) error.replace(0, file.size(), "FILE");
  return error;
}

TEST_F(SettingsTest, AnUnknownKeyOrTableAValueOfTheWrongTypeAndABadValueAreNamedWithTheirLine) {
  const auto file = dir_.file("orderflow.toml");
  EXPECT_EQ(error_for_serve(file, "[serve]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n"),
            "FILE line 3: unknown key serve.listn");
  EXPECT_EQ(error_for_serve(file, "[serv]\nlisten = \"127.0.0.1:1\"\n"), "FILE line 1: unknown table [serv]");
  EXPECT_EQ(error_for_serve(file, "[serve]\nio_threads = \"four\"\n"),
            "FILE line 2: serve.io_threads must be an integer");
  EXPECT_EQ(error_for_serve(file, "[serve]\nlisten = \"nowhere\"\n"),
            "FILE line 2: bad value for serve.listen: must be HOST:PORT, not nowhere");
  EXPECT_TRUE(error_for_serve(file, "[serve]\nlisten = \n").starts_with("FILE line 2: "));  // not TOML
}

TEST_F(SettingsTest, ABadValueFromTheEnvironmentNamesTheVariable) {
  ScopedEnv level("ORDERFLOW_SERVE_LOG_LEVEL", "loud");
  CommandLine cl({"serve"});
  EXPECT_EQ(
      cl.error,
      "ORDERFLOW_SERVE_LOG_LEVEL: bad value for serve.log_level: takes debug, info, warn, error or off, not loud");
}

TEST_F(SettingsTest, ABadValueOfAnotherSubcommandDoesNotStopThisOne) {
  auto file = write_config("[bench.http]\nrate = -1.0\n");
  CommandLine serve({"serve", "--config", file});
  EXPECT_EQ(serve.error, "");
  CommandLine bench({"bench", "http", "--config", file});
  EXPECT_NE(bench.error.find("line 2: bad value for bench.http.rate"), std::string::npos) << bench.error;
}

TEST_F(SettingsTest, AMissingFileIsAnError) {
  CommandLine cl({"serve", "--config", dir_.file("absent.toml")});
  EXPECT_EQ(cl.error, dir_.file("absent.toml") + ": cannot be read: No such file or directory");
}

TEST_F(SettingsTest, SwitchesTakeTrueAndFalseFromEverySource) {
  auto file = write_config("[serve]\naccess_log = true\ninsecure = true\n");
  ScopedEnv insecure("ORDERFLOW_SERVE_INSECURE", "false");
  CommandLine cl({"serve", "--config", file});
  ASSERT_EQ(cl.error, "");
  EXPECT_EQ(cl.setting("serve", "serve.access_log").value(), "true");
  EXPECT_EQ(cl.setting("serve", "serve.insecure").value(), "false");
}

TEST_F(SettingsTest, ARequiredSettingMayComeFromTheFile) {
  auto file = write_config("auth_keys = \"/etc/orderflow/auth-keys\"\n[token]\nkid = \"k1\"\n");
  CommandLine given({"token", "--config", file, "--role", "admin"});
  EXPECT_EQ(given.error, "");
  CommandLine missing({"token", "--config", file});
  EXPECT_EQ(missing.error,
            "token.role is required: give --role, ORDERFLOW_TOKEN_ROLE or token.role in the configuration file");
}

TEST_F(SettingsTest, UnknownOrderflowVariablesAreListedNotFatal) {
  ScopedEnv typo("ORDERFLOW_SERVE_LISTN", "127.0.0.1:1");
  CommandLine cl({"serve"});
  EXPECT_EQ(cl.error, "");
  const auto& unknown = cl.settings.unknown_environment();
  EXPECT_NE(std::find(unknown.begin(), unknown.end(), "ORDERFLOW_SERVE_LISTN"), unknown.end());
}

TEST_F(SettingsTest, AnOptionalNumberStaysUnsetUntilASourceGivesItAndOnlyANumberDoes) {
  CommandLine unset({"serve"});
  ASSERT_EQ(unset.error, "");
  const auto& rate = unset.setting("serve", "serve.rate_limit");
  EXPECT_EQ(rate.kind, SettingKind::number);
  EXPECT_EQ(Settings::shown_value(rate), "");  // `orderflow config` prints `# rate_limit unset`
  EXPECT_EQ(rate.source.kind, SettingSource::default_value);

  auto file = write_config("[serve]\nrate_limit = 2.5\n");
  CommandLine from_file({"serve", "--config", file});
  ASSERT_EQ(from_file.error, "");
  EXPECT_EQ(from_file.setting("serve", "serve.rate_limit").value(), "2.5");
  {
    ScopedEnv env("ORDERFLOW_SERVE_RATE_LIMIT", "0");  // 0 (off) is a value, not "unset"
    CommandLine from_env({"serve", "--config", file});
    ASSERT_EQ(from_env.error, "");
    EXPECT_EQ(from_env.setting("serve", "serve.rate_limit").value(), "0");
  }
  CommandLine from_flag({"serve", "--config", file, "--rate-limit", "40"});
  EXPECT_EQ(from_flag.setting("serve", "serve.rate_limit").value(), "40");

  const auto bad = dir_.file("bad.toml");
  EXPECT_EQ(error_for_serve(bad, "[serve]\nrate_limit = \"fast\"\n"), "FILE line 2: serve.rate_limit must be a number");
  EXPECT_EQ(error_for_serve(bad, "[serve]\nrate_limit = -1\n"),
            "FILE line 2: bad value for serve.rate_limit: must be a number of 0 or more, not -1");
}

TEST_F(SettingsTest, SecretsAndStorePasswordsAreNotShown) {
  auto file = write_config("store = \"postgres://app:s3cret@db/orders\"\n[bench.http]\ntoken = \"eyJhbGciOi\"\n");
  CommandLine cl({"config", "--config", file}, /*all=*/true);
  ASSERT_EQ(cl.error, "");
  EXPECT_EQ(Settings::shown_value(cl.setting("serve", "store")), "\"postgres://app:***@db/orders\"");
  EXPECT_EQ(Settings::shown_value(cl.setting("http", "bench.http.token")), "\"***\"");
  EXPECT_EQ(Settings::shown_value(cl.setting("serve", "serve.listen")), "\"127.0.0.1:8080\"");
}

}  // namespace
}  // namespace orderflow::cli
