package io.vblk.aio;

import jnr.ffi.annotations.IgnoreError;
import jnr.ffi.annotations.SaveError;
import jnr.ffi.annotations.Variadic;

/**
 * The one small libc interface vblk binds through jnr-ffi (jnr-posix lacks most of these). Raw
 * syscalls go through {@code syscall(2)} with the per-architecture numbers of {@link Syscalls};
 * everything else is a plain libc symbol. Pointers are passed as {@code long} addresses of native
 * memory the caller owns (direct buffers, {@link io.vblk.block.NativeBuffer}, mappings), so no jnr
 * Pointer or Struct object is created per call.
 *
 * <p>Functions marked {@code @SaveError} leave errno in {@link Native#errno()}; hot ones are
 * {@code @IgnoreError} and return {@code -1} with errno unavailable, or are raw syscalls whose
 * errno is likewise saved. Use {@link Native} rather than this interface directly.
 */
public interface LibC {
    // ---- raw syscalls: syscall(nr, args...) returns -1 and sets errno
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0, long a1);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0, long a1, long a2);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0, long a1, long a2, long a3);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0, long a1, long a2, long a3, long a4);
    @SaveError @Variadic(fixedCount = 1) long syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

    // ---- files
    @SaveError @Variadic(fixedCount = 2) int open(String path, int flags, int mode);
    @SaveError int close(int fd);
    @SaveError long read(int fd, long buf, long count);
    @SaveError long write(int fd, long buf, long count);
    @SaveError long pread(int fd, long buf, long count, long offset);
    @SaveError long pwrite(int fd, long buf, long count, long offset);
    @SaveError long preadv(int fd, long iov, int iovcnt, long offset);
    @SaveError long pwritev(int fd, long iov, int iovcnt, long offset);
    @SaveError long preadv2(int fd, long iov, int iovcnt, long offset, int flags);
    @SaveError long pwritev2(int fd, long iov, int iovcnt, long offset, int flags);
    @SaveError int fdatasync(int fd);
    @SaveError int fsync(int fd);
    @SaveError int ftruncate(int fd, long length);
    @SaveError int fallocate(int fd, int mode, long offset, long len);
    @SaveError int fstat(int fd, long statbuf);
    @SaveError int fstatfs(int fd, long statfsbuf);
    @SaveError long lseek(int fd, long offset, int whence);
    @SaveError @Variadic(fixedCount = 2) int ioctl(int fd, long request, long arg);
    @SaveError @Variadic(fixedCount = 2) int fcntl(int fd, int cmd, long arg);
    @SaveError int flock(int fd, int operation);
    @SaveError int unlink(String path);

    // ---- memory
    @SaveError long mmap(long addr, long length, int prot, int flags, int fd, long offset);
    @SaveError int munmap(long addr, long length);
    @SaveError int madvise(long addr, long length, int advice);
    @SaveError int memfd_create(String name, int flags);
    @SaveError int posix_memalign(long memptrAddr, long alignment, long size);
    @IgnoreError void free(long ptr);

    // ---- eventfd and epoll
    @SaveError int eventfd(int initval, int flags);
    @SaveError int epoll_create1(int flags);
    @SaveError int epoll_ctl(int epfd, int op, int fd, long event);
    @SaveError int epoll_wait(int epfd, long events, int maxevents, int timeout);

    // ---- unix sockets with SCM_RIGHTS
    @SaveError int socket(int domain, int type, int protocol);
    @SaveError int socketpair(int domain, int type, int protocol, long sv);
    @SaveError int bind(int fd, long addr, int addrlen);
    @SaveError int listen(int fd, int backlog);
    @SaveError int accept4(int fd, long addr, long addrlen, int flags);
    @SaveError int connect(int fd, long addr, int addrlen);
    @SaveError long sendmsg(int fd, long msghdr, int flags);
    @SaveError long recvmsg(int fd, long msghdr, int flags);
    @SaveError int shutdown(int fd, int how);
    @SaveError int setsockopt(int fd, int level, int optname, long optval, int optlen);

    // ---- process
    @IgnoreError int getpid();
    @IgnoreError long sysconf(int name);
    @IgnoreError String strerror(int errnum);
}
