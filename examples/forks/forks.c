/*
 * forks: the program forks two children, one after the other, and waits for
 * each. The first leaks three 40-byte blocks; the second drops a 3-node list
 * (1 direct + 2 indirect). Both end with exit(), which runs LSan's check in
 * the -fsanitize=leak build and reaches _exit, where `lsan run
 * --follow-forks` checks them. Then the parent leaks one 72-byte block of its
 * own. Without --follow-forks (and when lsan attaches with -p) the children
 * run untracked and only the parent's leak is seen.
 *
 * Nothing leaks before the forks: a child inherits its parent's heap, and
 * LSan in a child would report the parent's earlier leaks again; lsan
 * reports in each process only what that process allocated.
 */
#include "../common.h"

#include <sys/wait.h>

struct node {
	struct node *next;
	char pad[16];
}; /* 24 bytes */

static void *kept;

EX_NOINLINE void child_scatter(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		char *p = malloc(40);
		memset(p, 'c', 40);
	}
}

EX_NOINLINE void child_list(void)
{
	struct node *head = NULL;
	int i;

	for (i = 0; i < 3; i++) {
		struct node *n = malloc(sizeof(*n));
		n->next = head;
		memset(n->pad, 'n', sizeof(n->pad));
		head = n;
	}
	head->pad[0] = 'H';
}

EX_NOINLINE void parent_leak(void)
{
	char *p = malloc(72);

	memset(p, 'p', 72);
}

EX_NOINLINE void parent_keep(void)
{
	kept = malloc(56);
}

/* Runs work in a child that exits with exit(0), and waits for it. */
EX_NOINLINE void in_child(void (*work)(void))
{
	pid_t pid = fork();

	if (pid < 0)
		example_fail("fork");
	if (pid == 0) {
		work();
		example_scrub_stack();
		exit(0);
	}
	if (waitpid(pid, NULL, 0) != pid)
		example_fail("waitpid");
}

int main(void)
{
	example_begin();
	parent_keep();
	in_child(child_scatter);
	in_child(child_list);
	parent_leak();
	example_end();
	return 0;
}
