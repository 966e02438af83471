/*
 * list: a 10-node singly linked list whose head pointer is dropped. The head
 * is a direct leak; the 9 other nodes, reachable only through it, are
 * indirect; so are the 10 payload strings the nodes point to (allocated by
 * a different function). A second, kept list (in a global) is not a leak.
 */
#include "../common.h"

struct node {
	struct node *next;
	char *payload;
	char tag[32];
}; /* 48 bytes */

static struct node *kept_list;

/* 26 bytes each. */
EX_NOINLINE char *make_payload(int i)
{
	char *s = malloc(26);

	memset(s, 'a' + i, 25);
	s[25] = '\0';
	return s;
}

/* n nodes of 48 bytes, each with a payload; returns the head. */
EX_NOINLINE struct node *build_list(int n)
{
	struct node *head = NULL;
	int i;

	for (i = 0; i < n; i++) {
		struct node *nd = malloc(sizeof(*nd));
		nd->next = head;
		nd->payload = make_payload(i);
		memset(nd->tag, 't', sizeof(nd->tag));
		head = nd;
	}
	return head;
}

/* A 3-node list made by build_keep_list, kept in a global. */
EX_NOINLINE void build_keep_list(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		struct node *nd = calloc(1, sizeof(*nd));
		nd->next = kept_list;
		kept_list = nd;
	}
}

EX_NOINLINE void drop_list(void)
{
	struct node *head = build_list(10);

	head->tag[0] = 'H';
	/* head goes out of scope: the whole list is leaked. */
}

int main(void)
{
	example_begin();
	drop_list();
	build_keep_list();
	example_end();
	return 0;
}
