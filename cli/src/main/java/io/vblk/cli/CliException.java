package io.vblk.cli;

/**
 * A user error: bad option, bad argument, unusable image. {@link Main} prints its message as one
 * line on stderr (no stack trace) and exits with {@link #exitCode()}, like qemu-img's
 * error_report() followed by exit(1).
 */
public final class CliException extends Exception {
    private final int exitCode;
    private final boolean showTryHelp;

    public CliException(String message) {
        this(message, 1, false);
    }

    public CliException(String message, int exitCode, boolean showTryHelp) {
        super(message, null, false, false);
        this.exitCode = exitCode;
        this.showTryHelp = showTryHelp;
    }

    /** A usage error: the message is followed by "Try 'vblk CMD --help' for more information". */
    public static CliException usage(String message) {
        return new CliException(message, 1, true);
    }

    public int exitCode() {
        return exitCode;
    }

    public boolean showTryHelp() {
        return showTryHelp;
    }
}
