/*
 * sim_mem.c - memory accounting for the oracle "no core exceeds its memory
 * bounds". The simulator is linked with -Wl,--wrap=malloc,calloc,realloc,
 * free, so every allocation of the cores (a static library linked into the
 * simulator) passes through here. Each block carries a 16-byte header with
 * its size and owner (the node whose core call was running when it was
 * allocated), and live bytes are counted per owner.
 */
#include "sim.h"

#include <stdint.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

typedef struct {
  uint32_t owner, magic;
  uint64_t size;
} mem_hdr;
_Static_assert(sizeof(mem_hdr) == 16, "header keeps 16-byte alignment");
#define MEM_MAGIC 0x5133D00Du

int sim_mem_owner = SIM_MEM_NONE;
uint64_t sim_mem_live[SIM_MEM_OWNERS], sim_mem_peak[SIM_MEM_OWNERS];

static uint32_t owner_slot(void) {
  int o = sim_mem_owner;
  return (uint32_t)(o < 0 || o >= SIM_MEM_OWNERS - 1 ? SIM_MEM_OWNERS - 1 : o);
}

static void *account(mem_hdr *h, size_t n, uint32_t owner) {
  if (h == NULL) return NULL;
  h->owner = owner;
  h->magic = MEM_MAGIC;
  h->size = n;
  sim_mem_live[owner] += n;
  if (sim_mem_live[owner] > sim_mem_peak[owner])
    sim_mem_peak[owner] = sim_mem_live[owner];
  return h + 1;
}

void *__wrap_malloc(size_t n) {
  if (n > SIZE_MAX - sizeof(mem_hdr)) return NULL;
  return account(__real_malloc(n + sizeof(mem_hdr)), n, owner_slot());
}

void *__wrap_calloc(size_t n, size_t m) {
  if (m != 0 && n > (SIZE_MAX - sizeof(mem_hdr)) / m) return NULL;
  void *p = __wrap_malloc(n * m);
  if (p != NULL) memset(p, 0, n * m);
  return p;
}

void __wrap_free(void *p) {
  if (p == NULL) return;
  mem_hdr *h = (mem_hdr *)p - 1;
  if (h->magic != MEM_MAGIC) __builtin_trap();
  h->magic = 0;
  sim_mem_live[h->owner] -= h->size;
  __real_free(h);
}

void *__wrap_realloc(void *p, size_t n) {
  if (p == NULL) return __wrap_malloc(n);
  if (n > SIZE_MAX - sizeof(mem_hdr)) return NULL;
  mem_hdr *h = (mem_hdr *)p - 1;
  if (h->magic != MEM_MAGIC) __builtin_trap();
  uint32_t owner = h->owner;
  uint64_t old = h->size;
  mem_hdr *q = __real_realloc(h, n + sizeof(mem_hdr));
  if (q == NULL) return NULL;
  sim_mem_live[owner] -= old;
  return account(q, n, owner);
}

void sim_mem_reset_peaks(void) {
  for (int i = 0; i < SIM_MEM_OWNERS; i++) sim_mem_peak[i] = sim_mem_live[i];
}
