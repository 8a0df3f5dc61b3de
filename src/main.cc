#include "cli/cli.h"

// jemalloc's options, read when it starts (the MALLOC_CONF environment variable comes after
// them and wins); unused where the build brings another allocator (the sanitizers).
// background_thread (one): freed pages go back to the kernel from jemalloc's own thread
// instead of the threads that free them. Each return is an madvise whose TLB flush
// interrupts every core (costly on this project's virtual machines): 10% of a bus-fed
// projector's CPU, which frees whole batches; with it, 3.6–3.9 → 2.9–3.0 CPU s a run at 5k
// place-order/s on PostgreSQL (2026-12-06). The default `serve` in a flash sale: the same
// CPU per order (283–338 µs with it, 281–336 without; three alternated pairs).
extern "C" const char* malloc_conf;
const char* malloc_conf = "background_thread:true,max_background_threads:1";

int main(int argc, char** argv) { return orderflow::cli::run(argc, argv); }
