/*
 * LD_PRELOAD shim for tests/train/test_train.sh: every fsync() sleeps first, so `vigil train`
 * spends seconds in its repository write phase and the test can send a signal at that moment.
 * The sleep is done with nanosleep() in a loop so a signal handler run meanwhile does not cut
 * the delay short.
 */
#include <dlfcn.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd);

int fsync(int fd)
{
    static int (*real_fsync)(int);
    if (!real_fsync)
        real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    struct timespec left = {0, 400 * 1000 * 1000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    return real_fsync ? real_fsync(fd) : 0;
}
