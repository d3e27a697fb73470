/* hpcbridge testbed: MPI hello world, built on the host once per MPI flavour
 * (mpicc.openmpi -> /opt/hello-ompi, mpicc.mpich -> /opt/hello-mpich). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef FLAVOUR
#define FLAVOUR "unknown"
#endif

int main(int argc, char **argv) {
    int rank = -1, size = -1;
    char host[256] = "?";
    const char *node = getenv("SLURMD_NODENAME");
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host - 1);
    printf("hello rank=%d size=%d host=%s node=%s flavour=%s\n", rank, size, host,
           node ? node : "-", FLAVOUR);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
