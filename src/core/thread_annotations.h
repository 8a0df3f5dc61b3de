// Clang's thread-safety attributes (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html),
// as leveldb's port/thread_annotations.h and absl's base/thread_annotations.h spell them.
// They say which mutex guards a member and which a function needs held; the
// ORDERFLOW_THREAD_SAFETY=ON build (clang-14, -Werror=thread-safety; scripts/test.sh)
// checks them. Empty under g++, which does not know them.
//
// Use them with the annotated wrappers of core/mutex.h: libstdc++'s std::mutex and
// std::lock_guard carry no attributes, so a member guarded by a std::mutex is not checked.
#pragma once

#if defined(__clang__)
#define OF_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define OF_THREAD_ANNOTATION(x)
#endif

// A type that is a lock ("mutex"), or an RAII object that holds one.
#define CAPABILITY(x) OF_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY OF_THREAD_ANNOTATION(scoped_lockable)

// Data: read or written only with the mutex held (PT_: the data a pointer points to).
#define GUARDED_BY(x) OF_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) OF_THREAD_ANNOTATION(pt_guarded_by(x))

// Lock order: this mutex is taken before/after the others.
#define ACQUIRED_BEFORE(...) OF_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) OF_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))

// Functions: the caller holds the mutex (exclusively, or at least shared) / must not hold it.
#define REQUIRES(...) OF_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) OF_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) OF_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// Functions that take or release a mutex (the mutex's own methods, and RAII wrappers').
#define ACQUIRE(...) OF_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) OF_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) OF_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) OF_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) OF_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) OF_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) OF_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) OF_THREAD_ANNOTATION(lock_returned(x))

// Turns the analysis off for one function: only where it cannot follow the locking (say why).
#define NO_THREAD_SAFETY_ANALYSIS OF_THREAD_ANNOTATION(no_thread_safety_analysis)
