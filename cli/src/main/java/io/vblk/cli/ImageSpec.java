package io.vblk.cli;

import io.vblk.block.CacheMode;
import io.vblk.block.BlockException;

/**
 * What the common image options of every vblk command said: {@code -f fmt}, {@code -t cache},
 * {@code -i native|threads} (also {@code -k} and {@code -n} for qemu-io), {@code -r},
 * {@code --image-opts}, {@code -U}, and the FILE operand. Commands feed options to
 * {@link #accept} from their GetOpt loop; {@link ImageOpener} turns the result into a graph.
 */
public final class ImageSpec {
    public String format;          // null: probe
    public String cache;           // null: writeback (BDRV_DEFAULT_CACHE)
    public String aio;             // null: threads
    public boolean readOnly;
    public boolean imageOpts;
    public boolean discardUnmap;   // discard=unmap: qemu-io opens with BDRV_O_UNMAP, qemu-img bench does not
    public String filename;        // a path, a size for -f null/memory, or key=value with --image-opts

    /**
     * Handles one common option; returns false when {@code opt} is not one of them.
     * {@code qemuIo} selects qemu-io's extra spellings ({@code -k} native AIO, {@code -n} nocache).
     */
    public boolean accept(String opt, String arg, boolean qemuIo) throws CliException {
        switch (opt) {
            case "f", "format" -> format = arg;
            case "t", "cache" -> {
                try {
                    CacheMode.parse(arg);
                } catch (BlockException e) {
                    throw new CliException(e.getMessage());
                }
                cache = arg;
            }
            case "i", "aio" -> {
                if (!arg.equals("native") && !arg.equals("threads")) {
                    throw new CliException("Invalid aio option: " + arg + " (expected native or threads)");
                }
                aio = arg;
            }
            case "r", "read-only" -> readOnly = true;
            case "image-opts" -> imageOpts = true;
            case "U", "force-share" -> { /* no image locking in vblk: accepted for compatibility */ }
            case "k", "native-aio" -> {
                if (!qemuIo) return false;
                aio = "native";
            }
            case "n", "nocache" -> cache = "none";
            default -> {
                return false;
            }
        }
        return true;
    }

    /** The cache mode, writeback when not given (as BDRV_DEFAULT_CACHE). */
    public CacheMode cacheMode() {
        try {
            return CacheMode.parse(cache);
        } catch (BlockException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The {@code -f} value naming a size-only driver ({@code null}, {@code memory}), whose FILE operand is a size. */
    public boolean sizeOnlyFormat() {
        return "null".equals(format) || "null-co".equals(format) || "memory".equals(format);
    }
}
