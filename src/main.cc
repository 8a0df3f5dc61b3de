#include "cli/cli.h"

int main(int argc, char** argv) { return orderflow::cli::run(argc, argv); }
