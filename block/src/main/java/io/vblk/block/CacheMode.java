package io.vblk.block;

import java.util.Locale;

/**
 * QEMU's cache modes ({@code -t}): how {@code none|writeback|writethrough|directsync|unsafe} map to
 * O_DIRECT ({@code cache.direct}), the write cache the device exposes (writeback: flushes make
 * data stable; writethrough: every write is FUA) and whether flushes are ignored
 * ({@code cache.no-flush}), exactly as bdrv_parse_cache_mode does.
 */
public enum CacheMode {
    NONE(true, true, false),
    WRITEBACK(false, true, false),
    WRITETHROUGH(false, false, false),
    DIRECTSYNC(true, false, false),
    UNSAFE(false, true, true);

    /** Open the file with O_DIRECT. */
    public final boolean direct;
    /** The guest-visible write cache is enabled (writeback); when false, writes are made FUA. */
    public final boolean writeback;
    /** Flushes are ignored (cache.no-flush). */
    public final boolean noFlush;

    CacheMode(boolean direct, boolean writeback, boolean noFlush) {
        this.direct = direct;
        this.writeback = writeback;
        this.noFlush = noFlush;
    }

    /** Parses a {@code -t} value; throws a one-line error for anything else. */
    public static CacheMode parse(String s) throws BlockException {
        if (s == null || s.isEmpty()) {
            return WRITEBACK;
        }
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "none", "off" -> NONE;
            case "writeback" -> WRITEBACK;
            case "writethrough" -> WRITETHROUGH;
            case "directsync" -> DIRECTSYNC;
            case "unsafe" -> UNSAFE;
            default -> throw new BlockException(Errno.EINVAL, "Invalid cache option: " + s);
        };
    }

    /**
     * Writes this mode into node options as bdrv_parse_cache_mode's flags: {@code cache.direct},
     * {@code cache.no-flush} and the node's {@code write-cache} (off makes every write FUA, as a
     * BlockBackend without write cache does). Existing keys are overwritten; returns {@code o}.
     */
    public BlockOptions applyTo(BlockOptions o) {
        o.put("cache.direct", direct ? "on" : "off");
        o.put("cache.no-flush", noFlush ? "on" : "off");
        o.put("write-cache", writeback ? "on" : "off");
        return o;
    }

    public String optionName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
