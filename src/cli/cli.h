// The orderflow binary: a dispatch table of subcommands, one file each.
#pragma once

namespace orderflow::cli {

// Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
int run(int argc, char** argv);

}  // namespace orderflow::cli
