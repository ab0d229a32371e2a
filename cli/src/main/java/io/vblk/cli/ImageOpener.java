package io.vblk.cli;

import io.vblk.aio.IoThreads;
import io.vblk.block.AioContext;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.CacheMode;
import io.vblk.block.Errno;
import io.vblk.block.Sizes;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Turns an {@link ImageSpec} into an open graph on a fresh I/O thread, the way qemu-img and
 * qemu-io build theirs from {@code -f/-t/-i/-r} (img_open / openfile): probe the format when none
 * is given (qcow2 magic, else raw), put the format driver over a {@code file} node, and set the
 * cache mode's {@code cache.direct}, {@code cache.no-flush} and write cache on the top node so that
 * children inherit them. {@code -f null SIZE} and {@code -f memory SIZE} open those drivers alone.
 */
public final class ImageOpener {
    /** qcow2's magic, "QFI\xfb" (QCOW_MAGIC), the only format probed besides raw. */
    static final int QCOW2_MAGIC = 0x514649fb;

    private ImageOpener() {}

    /** Starts the I/O thread commands use: epoll-polled, so Linux AIO can attach to it. */
    public static AioContext startContext(String name) {
        return IoThreads.start(name);
    }

    /** Opens {@code spec} on a new I/O thread. The thread is stopped again when the open fails. */
    public static OpenedImage open(ImageSpec spec, String threadName) throws BlockException, CliException {
        BlockOptions opts = toBlockOptions(spec);
        AioContext ctx = startContext(threadName);
        try {
            BlockNode node = openOn(ctx, opts);
            return new OpenedImage(node, ctx, spec.filename);
        } catch (BlockException | RuntimeException e) {
            ctx.close();
            throw e;
        }
    }

    /**
     * Opens a graph in a coroutine on {@code ctx} (as bdrv_open runs in QEMU's main loop
     * coroutine): drivers that read metadata at open, like qcow2, then use the I/O thread's Linux
     * AIO engine instead of falling back to the thread pool.
     */
    public static BlockNode openOn(AioContext ctx, BlockOptions opts) throws BlockException {
        BlockNode[] out = new BlockNode[1];
        BlockException[] err = new BlockException[1];
        RuntimeException[] bug = new RuntimeException[1];
        ctx.run(() -> {
            try {
                out[0] = BlockNode.open(opts);
            } catch (BlockException e) {
                err[0] = e;
            } catch (RuntimeException e) {
                bug[0] = e;
            }
            return 0;
        });
        if (bug[0] != null) {
            throw bug[0];
        }
        if (err[0] != null) {
            throw err[0];
        }
        return out[0];
    }

    /** The open options for {@code spec}: a pure function apart from reading the file's magic when probing. */
    public static BlockOptions toBlockOptions(ImageSpec spec) throws CliException, BlockException {
        if (spec.filename == null) {
            throw CliException.usage("Expecting one image file name");
        }
        CacheMode cache = spec.cacheMode();
        BlockOptions o;
        String protocolPrefix;  // where file-driver options (aio) go, null when there is no file node
        if (spec.imageOpts) {
            if (spec.format != null) {
                throw new CliException("--image-opts and --format are mutually exclusive");
            }
            o = BlockOptions.parse(spec.filename);
            String drv = o.get("driver");
            protocolPrefix = "file".equals(drv) || (drv == null && o.has("filename")) ? "" : o.has("file.driver") || o.has("file.filename") ? "file." : null;
        } else if (spec.sizeOnlyFormat()) {
            long size;
            try {
                size = Sizes.parse(spec.filename);
            } catch (IllegalArgumentException e) {
                throw new CliException("Invalid image size specified: '" + spec.filename + "' (-f " + spec.format + " takes a size in place of FILE)");
            }
            String drv = spec.format.equals("memory") ? "memory" : "null";
            o = new BlockOptions().put("driver", drv).put("size", Long.toString(size));
            protocolPrefix = null;
        } else {
            String fmt = spec.format != null ? spec.format : probeFormat(spec.filename);
            switch (fmt) {
                case "file" -> {
                    o = new BlockOptions().put("driver", "file").put("filename", spec.filename);
                    protocolPrefix = "";
                }
                case "raw" -> {
                    if (BlockDrivers.has("raw")) {
                        o = new BlockOptions().put("driver", "raw").put("file.driver", "file").put("file.filename", spec.filename);
                        protocolPrefix = "file.";
                    } else {
                        o = new BlockOptions().put("driver", "file").put("filename", spec.filename);
                        protocolPrefix = "";
                    }
                }
                default -> {
                    if (!BlockDrivers.has(fmt)) {
                        throw new CliException("Unknown file format '" + fmt + "'");
                    }
                    o = new BlockOptions().put("driver", fmt).put("file.driver", "file").put("file.filename", spec.filename);
                    protocolPrefix = "file.";
                }
            }
        }
        if (spec.aio != null) {
            if (protocolPrefix == null) {
                if (!spec.imageOpts && !spec.sizeOnlyFormat()) {
                    throw new CliException("-i " + spec.aio + " needs an image with a file node");
                }
            } else {
                o.putIfAbsent(protocolPrefix + "aio", spec.aio);
            }
            if (spec.aio.equals("native") && !cache.direct && !o.getBool("cache.direct", false) && protocolPrefix != null) {
                throw new CliException("aio=native was specified, but it requires cache.direct=on, which was not specified (use -t none or -t directsync)");
            }
        }
        if (spec.cache != null || !spec.imageOpts) {
            o.put("cache.direct", cache.direct ? "on" : "off");
            o.put("cache.no-flush", cache.noFlush ? "on" : "off");
            if (!cache.writeback) {
                o.put("write-cache", "off");
            }
        }
        if (spec.readOnly) {
            o.put("read-only", "on");
        }
        if (spec.discardUnmap) {
            o.putIfAbsent("discard", "unmap");
        }
        return o;
    }

    /** qcow2 when the file starts with QCOW_MAGIC, else raw (bdrv_probe_all reduced to our formats). */
    public static String probeFormat(String filename) throws BlockException {
        Path p = Path.of(filename);
        if (Files.isDirectory(p)) {
            throw new BlockException(Errno.EISDIR, "Could not open '" + filename + "': " + Errno.describe(Errno.EISDIR));
        }
        try (InputStream in = Files.newInputStream(p)) {
            byte[] b = in.readNBytes(4);
            if (b.length == 4) {
                int magic = ((b[0] & 0xff) << 24) | ((b[1] & 0xff) << 16) | ((b[2] & 0xff) << 8) | (b[3] & 0xff);
                if (magic == QCOW2_MAGIC) {
                    return "qcow2";
                }
            }
            return "raw";
        } catch (NoSuchFileException e) {
            throw new BlockException(Errno.ENOENT, "Could not open '" + filename + "': " + Errno.describe(Errno.ENOENT));
        } catch (java.nio.file.AccessDeniedException e) {
            throw new BlockException(Errno.EACCES, "Could not open '" + filename + "': " + Errno.describe(Errno.EACCES));
        } catch (IOException e) {
            throw new BlockException(Errno.EIO, "Could not open '" + filename + "': " + e.getMessage());
        }
    }
}
