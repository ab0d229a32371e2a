package io.vblk.cli.img;

import io.vblk.block.AioContext;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.Errno;
import io.vblk.cli.img.ImgSupport.Args;
import java.io.PrintStream;
import java.util.Set;

/**
 * {@code vblk map [-f fmt] [--output=human|json] FILE}: qemu-img map (img_map, get_block_status,
 * entry_mergeable, dump_map_entry). Walks the image with {@link BlockNode#blockStatus} and, for
 * ranges this layer leaves unallocated, down the backing chain (depth). Adds what QEMU's generic
 * bdrv_co_block_status adds: ZERO for unallocated ranges at the bottom of the chain, and, for
 * data clusters, the file's hole status (so preallocated, never written clusters are zero+data).
 * Exit 0, or 1 with one error line.
 */
public final class MapCommand {
    private MapCommand() {}

    static final String USAGE = "usage: vblk map [-f fmt] [--output=human|json] [--start-offset=OFFSET] [--max-length=LEN] FILE";
    private static final long PROBE = 1L << 30;

    /** One MapEntry. */
    static final class Entry {
        long start, length, depth, offset;
        boolean present, zero, data, hasOffset;
        String filename;
    }

    public static int run(String[] args, PrintStream out, PrintStream err) {
        ImgSupport.OneImage parsed = ImgSupport.parseOneImage(args, "fs", "hU", Set.of("output", "object", "start-offset", "max-length"), Set.of("help", "force-share", "image-opts"), USAGE, out, err);
        if (parsed.exitCode() >= 0) {
            return parsed.exitCode();
        }
        boolean json = parsed.json();
        String filename = parsed.filename();
        String fmt = parsed.format();
        // qemu-img map: the mapping of [start-offset, start-offset + max-length) only
        long startOffset = sizeOption(parsed.args(), "--start-offset", 0, "start offset", err);
        long maxLen = sizeOption(parsed.args(), "--max-length", -1, "max length", err);
        if (startOffset == BAD_SIZE || maxLen == BAD_SIZE) return 1;
        AioContext ctx = ImgSupport.startContext();
        BlockNode node = null;
        try {
            if (fmt.equals("raw")) {
                node = ImgSupport.openFile(filename, false);
            } else {
                node = BlockNode.open(new BlockOptions().put("driver", "qcow2").put("read-only", "on")
                        .put("file.driver", "file").put("file.filename", filename).put("file.aio", "threads"));
            }
            BlockNode top = node;
            boolean raw = fmt.equals("raw");
            int[] rc = {0};
            ctx.run(() -> {
                rc[0] = walk(top, raw, filename, startOffset, maxLen, json, out, err);
                return 0;
            });
            return rc[0];
        } catch (BlockException e) {
            err.println("vblk: Could not open '" + filename + "': " + e.getMessage());
            return 1;
        } finally {
            ImgSupport.close(ctx, node);
            ctx.close();
        }
    }

    private static final long BAD_SIZE = Long.MIN_VALUE;

    /** A size option with qemu-img's suffixes, {@code absent} when not given, BAD_SIZE (message printed) when invalid. */
    private static long sizeOption(Args a, String opt, long absent, String what, PrintStream err) {
        String v = a.get(opt);
        if (v == null) return absent;
        long n = ImgSupport.parseSize(v);
        if (n >= 0) return n;
        err.println("vblk: Invalid " + what + " specified! You may use k, M, G, T, P or E suffixes for ");
        err.println("vblk: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return BAD_SIZE;
    }

    private static int walk(BlockNode top, boolean raw, String filename, long startOffset, long maxLength, boolean json,
                            PrintStream out, PrintStream err) {
        long length = top.getLength();
        if (length < 0) {
            err.println("vblk: Could not get the image length: " + Errno.describe((int) -length));
            return 1;
        }
        if (maxLength >= 0) length = Math.min(length, startOffset + maxLength);
        if (json) out.print('[');
        else out.printf("%-16s%-16s%-16s%s%n", "Offset", "Length", "Mapped to", "File");
        Entry curr = new Entry();
        curr.start = startOffset;
        BlockStatus st = new BlockStatus();
        while (curr.start + curr.length < length) {
            long offset = curr.start + curr.length;
            long n = Math.min(PROBE, length - offset);
            Entry next = new Entry();
            int r = status(top, raw, filename, offset, n, st, next);
            if (r < 0) {
                if (json) out.println();
                err.println("vblk: Could not read file metadata: " + Errno.describe(-r));
                return 1;
            }
            if (mergeable(curr, next)) {
                curr.length += next.length;
                continue;
            }
            if (curr.length > 0 && dump(curr, next, json, out, err) < 0) return 1;
            curr = next;
        }
        if (dump(curr, null, json, out, err) < 0) return 1;
        if (json) out.println("]");
        return 0;
    }

    /** get_block_status: the status at {@code offset} in the first layer of the chain that has one. */
    private static int status(BlockNode top, boolean raw, String filename, long offset, long bytes, BlockStatus st, Entry e) {
        BlockNode bs = top;
        int depth = 0;
        int ret;
        long pnum;
        long map = 0;
        BlockNode file = null;
        while (true) {
            if (raw) {
                ret = bs.blockStatus(true, offset, bytes, st);
                if (ret < 0) return ret;
                ret = st.status;
                pnum = st.bytes;
                map = st.offset;
                file = bs;
                break;
            }
            ret = bs.blockStatus(true, offset, bytes, st);
            if (ret < 0) return ret;
            ret = st.status;
            pnum = st.bytes;
            map = st.offset;
            file = st.file;
            if (pnum <= 0) return -Errno.EIO;
            BlockChild back = bs.backing();
            // the qcow2 driver sets ALLOCATED itself, and ZERO for unallocated ranges without backing
            if ((ret & (BlockStatus.DATA | BlockStatus.ZERO)) == 0 && back == null) {
                ret |= BlockStatus.ZERO;
            }
            if ((ret & BlockStatus.RECURSE) != 0 && file != null && (ret & BlockStatus.DATA) != 0
                    && (ret & BlockStatus.ZERO) == 0 && (ret & BlockStatus.OFFSET_VALID) != 0) {
                BlockStatus fs = new BlockStatus();
                int r2 = file.blockStatus(true, map, pnum, fs);
                if (r2 >= 0) {
                    if ((fs.status & BlockStatus.EOF) != 0 && (fs.bytes == 0 || (fs.status & BlockStatus.ZERO) != 0)) {
                        ret |= BlockStatus.ZERO;
                    } else if (fs.bytes > 0) {
                        pnum = Math.min(pnum, fs.bytes);
                        ret |= fs.status & BlockStatus.ZERO;
                    }
                }
            }
            if ((ret & (BlockStatus.DATA | BlockStatus.ZERO)) != 0) break;
            if (back == null) break;
            bs = back.node();
            bytes = pnum;
            depth++;
        }
        e.start = offset;
        e.length = pnum;
        e.data = (ret & BlockStatus.DATA) != 0;
        e.zero = (ret & BlockStatus.ZERO) != 0;
        e.hasOffset = (ret & BlockStatus.OFFSET_VALID) != 0;
        e.offset = e.hasOffset ? map : 0;
        e.depth = depth;
        e.present = (ret & BlockStatus.ALLOCATED) != 0;
        e.filename = e.hasOffset && file != null ? layerName(top, depth, filename) : null;
        return 0;
    }

    /**
     * The name QEMU shows for layer {@code depth}: the image name for 0, then each backing name
     * combined with the directory of the layer above (bdrv_get_full_backing_filename).
     */
    private static String layerName(BlockNode top, int depth, String filename) {
        String name = filename;
        BlockNode bs = top;
        for (int d = 0; d < depth && bs != null; d++) {
            String backing = bs.driver() instanceof io.vblk.qcow2.Qcow2Driver q ? q.headerSnapshot().backingFile : null;
            BlockChild c = bs.backing();
            if (backing == null || c == null) return c != null && c.node().filename() != null ? c.node().filename() : name;
            name = InfoCommand.fullBackingName(name, backing);
            bs = c.node();
        }
        return name;
    }

    /** entry_mergeable. */
    private static boolean mergeable(Entry c, Entry n) {
        if (c.length == 0) return false;
        if (c.zero != n.zero || c.data != n.data || c.depth != n.depth || c.present != n.present
                || (c.filename == null) != (n.filename == null) || c.hasOffset != n.hasOffset) {
            return false;
        }
        if (c.filename != null && !c.filename.equals(n.filename)) return false;
        return !c.hasOffset || c.offset + c.length == n.offset;
    }

    /** dump_map_entry. */
    private static int dump(Entry e, Entry next, boolean json, PrintStream out, PrintStream err) {
        if (!json) {
            if (e.data && !e.hasOffset) {
                err.println("vblk: File contains external, encrypted or compressed clusters.");
                return -1;
            }
            if (e.data && !e.zero) {
                out.printf("%-16s%-16s%-16s%s%n", hex(e.start), hex(e.length), hex(e.hasOffset ? e.offset : 0),
                        e.filename != null ? e.filename : "");
            }
            if (next != null && (!next.data || next.zero)) {
                next.data = false;
                next.zero = true;
            }
            return 0;
        }
        out.printf("{ \"start\": %d, \"length\": %d, \"depth\": %d, \"present\": %b, \"zero\": %b, \"data\": %b",
                e.start, e.length, e.depth, e.present, e.zero, e.data);
        if (e.hasOffset) out.printf(", \"offset\": %d", e.offset);
        out.print('}');
        if (next != null) out.println(",");
        return 0;
    }

    /** C's "%#x": 0 stays "0". */
    private static String hex(long v) {
        return v == 0 ? "0" : "0x" + Long.toHexString(v);
    }
}
