/* Shared by the attack programs: every attack prints one JSON line
 *   {"attack": NAME, "succeeded": true|false, "errno": N, "error": "ENAME", "detail": "..."}
 * so that the test harness can check what the agent saw. */
#ifndef ENCLOSURE_ESCAPE_ATTACK_H
#define ENCLOSURE_ESCAPE_ATTACK_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static inline void report(const char* attack, int succeeded, int err, const char* detail) {
  const char* name = err ? strerrorname_np(err) : "";
  printf(
      "{\"attack\": \"%s\", \"succeeded\": %s, \"errno\": %d, \"error\": \"%s\", \"detail\": "
      "\"%s\"}\n",
      attack, succeeded ? "true" : "false", err, name ? name : "", detail ? detail : "");
  fflush(stdout);
}

/* Reports a call's outcome: it succeeded when rc >= 0. */
static inline void report_call(const char* attack, long rc, const char* detail) {
  report(attack, rc >= 0, rc >= 0 ? 0 : errno, detail);
}

struct attack {
  const char* name;
  void (*run)(int argc, char** argv);
};

static inline int run_attack(const struct attack* attacks, int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s ATTACK [ARGS]\n", argv[0]);
    return 2;
  }
  for (const struct attack* a = attacks; a->name; ++a) {
    if (strcmp(a->name, argv[1]) == 0) {
      a->run(argc - 2, argv + 2);
      return 0;
    }
  }
  fprintf(stderr, "unknown attack %s\n", argv[1]);
  return 2;
}

#endif
