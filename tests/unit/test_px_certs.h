/*
 * Test certificates made at test time with OpenSSL (no files in the tree): a CA, a server
 * certificate for localhost (SAN DNS:localhost, IP:127.0.0.1) signed by it, the same with the
 * root appended, and an unrelated CA. Written once per process to a temporary directory that
 * is removed at exit.
 */
#ifndef TEST_PX_CERTS_H
#define TEST_PX_CERTS_H

typedef struct px_test_certs {
    char ca[300];       /* the CA that signed the server certificate */
    char other_ca[300]; /* a CA that signed nothing we serve */
    char cert[300];     /* server certificate */
    char chain[300];    /* server certificate followed by the (self-signed) CA */
    char key[300];      /* server private key */
} px_test_certs_t;

const px_test_certs_t *px_test_certs(void);

#endif
