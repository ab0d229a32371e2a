package io.vblk.block;

/**
 * Linux errno values and their names, the one error currency of the request path.
 *
 * <p>Request-path methods return {@code 0} (or a byte count) on success and a negative errno on
 * failure, as QEMU's coroutine functions do; nothing on the hot path throws. Open, create and
 * other slow-path calls throw {@link BlockException}, which carries the same errno.
 */
public final class Errno {
    private Errno() {}

    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int ENXIO = 6;
    public static final int E2BIG = 7;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EACCES = 13;
    public static final int EFAULT = 14;
    public static final int EBUSY = 16;
    public static final int EEXIST = 17;
    public static final int ENODEV = 19;
    public static final int ENOTDIR = 20;
    public static final int EISDIR = 21;
    public static final int EINVAL = 22;
    public static final int EMFILE = 24;
    public static final int ENOTTY = 25;
    public static final int EFBIG = 27;
    public static final int ENOSPC = 28;
    public static final int ESPIPE = 29;
    public static final int EROFS = 30;
    public static final int EPIPE = 32;
    public static final int ERANGE = 34;
    public static final int EDEADLK = 35;
    public static final int ENOSYS = 38;
    public static final int ENOTEMPTY = 39;
    public static final int ELOOP = 40;
    public static final int ENODATA = 61;
    public static final int EOVERFLOW = 75;
    public static final int EBADMSG = 74;
    public static final int ENOTSOCK = 88;
    public static final int EMSGSIZE = 90;
    public static final int EPROTO = 71;
    public static final int EOPNOTSUPP = 95;
    /** On Linux ENOTSUP and EOPNOTSUPP are the same number. */
    public static final int ENOTSUP = 95;
    public static final int ECONNRESET = 104;
    public static final int ENOBUFS = 105;
    public static final int ETIMEDOUT = 110;
    public static final int ECONNREFUSED = 111;
    public static final int EALREADY = 114;
    public static final int EINPROGRESS = 115;
    public static final int ESTALE = 116;
    public static final int EDQUOT = 122;
    public static final int ENOMEDIUM = 123;
    public static final int ECANCELED = 125;

    private static final String[] NAMES = new String[134];
    static {
        NAMES[EPERM] = "EPERM"; NAMES[ENOENT] = "ENOENT"; NAMES[EINTR] = "EINTR"; NAMES[EIO] = "EIO";
        NAMES[ENXIO] = "ENXIO"; NAMES[E2BIG] = "E2BIG"; NAMES[EBADF] = "EBADF"; NAMES[EAGAIN] = "EAGAIN";
        NAMES[ENOMEM] = "ENOMEM"; NAMES[EACCES] = "EACCES"; NAMES[EFAULT] = "EFAULT"; NAMES[EBUSY] = "EBUSY";
        NAMES[EEXIST] = "EEXIST"; NAMES[ENODEV] = "ENODEV"; NAMES[ENOTDIR] = "ENOTDIR"; NAMES[EISDIR] = "EISDIR";
        NAMES[EINVAL] = "EINVAL"; NAMES[EMFILE] = "EMFILE"; NAMES[ENOTTY] = "ENOTTY"; NAMES[EFBIG] = "EFBIG";
        NAMES[ENOSPC] = "ENOSPC"; NAMES[ESPIPE] = "ESPIPE"; NAMES[EROFS] = "EROFS"; NAMES[EPIPE] = "EPIPE";
        NAMES[ERANGE] = "ERANGE"; NAMES[EDEADLK] = "EDEADLK"; NAMES[ENOSYS] = "ENOSYS";
        NAMES[ENOTEMPTY] = "ENOTEMPTY"; NAMES[ELOOP] = "ELOOP"; NAMES[ENODATA] = "ENODATA";
        NAMES[EOVERFLOW] = "EOVERFLOW"; NAMES[EBADMSG] = "EBADMSG"; NAMES[ENOTSOCK] = "ENOTSOCK";
        NAMES[EMSGSIZE] = "EMSGSIZE"; NAMES[EPROTO] = "EPROTO"; NAMES[EOPNOTSUPP] = "ENOTSUP";
        NAMES[ECONNRESET] = "ECONNRESET"; NAMES[ENOBUFS] = "ENOBUFS"; NAMES[ETIMEDOUT] = "ETIMEDOUT";
        NAMES[ECONNREFUSED] = "ECONNREFUSED"; NAMES[EALREADY] = "EALREADY"; NAMES[EINPROGRESS] = "EINPROGRESS";
        NAMES[ESTALE] = "ESTALE"; NAMES[EDQUOT] = "EDQUOT"; NAMES[ENOMEDIUM] = "ENOMEDIUM";
        NAMES[ECANCELED] = "ECANCELED";
    }

    /** The symbolic name of an errno, positive or negative ({@code -5} and {@code 5} give "EIO"). */
    public static String name(int errno) {
        int e = Math.abs(errno);
        String n = e < NAMES.length ? NAMES[e] : null;
        return n != null ? n : "errno " + e;
    }

    /** A human description like strerror, prefixed by the name: "EIO (Input/output error)". */
    public static String describe(int errno) {
        int e = Math.abs(errno);
        String text = switch (e) {
            case EPERM -> "Operation not permitted";
            case ENOENT -> "No such file or directory";
            case EIO -> "Input/output error";
            case EBADF -> "Bad file descriptor";
            case EAGAIN -> "Resource temporarily unavailable";
            case ENOMEM -> "Cannot allocate memory";
            case EACCES -> "Permission denied";
            case EISDIR -> "Is a directory";
            case EINVAL -> "Invalid argument";
            case EFBIG -> "File too large";
            case ENOSPC -> "No space left on device";
            case EROFS -> "Read-only file system";
            case ENOTSUP -> "Operation not supported";
            case ENOMEDIUM -> "No medium found";
            case ECANCELED -> "Operation canceled";
            default -> null;
        };
        return text == null ? name(e) : name(e) + " (" + text + ")";
    }

    /** True for the errnos QEMU's file-posix treats as "not supported" (ENOTSUP, ENODEV, ENOSYS, ENOTTY). */
    public static boolean isNotSupported(int errno) {
        int e = Math.abs(errno);
        return e == ENOTSUP || e == ENODEV || e == ENOSYS || e == ENOTTY;
    }
}
