/*
 * An intrusive circular doubly linked list (libuv's QUEUE, pgbouncer's List): objects embed a
 * px_list_t and move between lists in O(1) without allocating. A node that is in no list points
 * at itself, so removing it twice is harmless.
 */
#ifndef PX_LIST_H
#define PX_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct px_list {
    struct px_list *next, *prev;
} px_list_t;

static inline void px_list_init(px_list_t *l)
{
    l->next = l->prev = l;
}

static inline bool px_list_empty(const px_list_t *l)
{
    return l->next == l;
}

static inline void px_list_remove(px_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline void px_list_append(px_list_t *head, px_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Iterates safely against removal of the current node. */
#define px_list_for_each_safe(pos, tmp, head)                                                      \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
