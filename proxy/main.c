/* Temporary entry point until the daemon lands. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        printf("rsproxy %s\n", RSPROXY_VERSION);
    return 0;
}
