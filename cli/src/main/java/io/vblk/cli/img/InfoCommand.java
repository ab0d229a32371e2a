package io.vblk.cli.img;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.qcow2.Qcow2Header;
import io.vblk.qcow2.check.CheckFile;
import io.vblk.qcow2.check.Qcow2Check;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code vblk info [-f fmt] [--output=human|json] FILE}: qemu-img info (bdrv_image_info_dump and
 * the ImageInfo JSON) for raw and qcow2 images: format, virtual size, disk size (st_blocks),
 * cluster size, backing file and format, and qcow2's format-specific fields (compat, compression
 * type, lazy refcounts, refcount bits, corrupt, extended l2) and dirty flag. Reads the header
 * only, so it works on corrupt and dirty images too. Exit 0, or 1 with one error line.
 */
public final class InfoCommand {
    private InfoCommand() {}

    static final String USAGE = "usage: vblk info [-f fmt] [--output=human|json] FILE";

    public static int run(String[] args, PrintStream out, PrintStream err) {
        ImgSupport.OneImage parsed = ImgSupport.parseOneImage(args, "f", "hqU", Set.of("output", "object", "cache"), Set.of("help", "force-share", "image-opts"), USAGE, out, err);
        if (parsed.exitCode() >= 0) {
            return parsed.exitCode();
        }
        boolean json = parsed.json();
        String filename = parsed.filename();
        String fmt = parsed.format();
        AioContext ctx = ImgSupport.startContext();
        BlockNode node = null;
        try {
            node = ImgSupport.openFile(filename, false);
            BlockNode n = node;
            long length = lengthOf(ctx, n);
            Qcow2Header h = null;
            java.util.List<Map<String, Object>> snaps = java.util.List.of();
            if (fmt.equals("qcow2")) {   // a bad header or snapshot table: the catch below prints it
                HeaderAndSnapshots hs = ImgSupport.readWith(ctx, n, f -> {
                    Qcow2Header hh = Qcow2Check.readHeader(f);
                    return new HeaderAndSnapshots(hh, readSnapshots(f, hh));
                });
                h = hs.header();
                snaps = hs.snapshots();
            }
            long actual = ImgSupport.allocatedSize(filename);
            Map<String, Object> info = info(filename, fmt, length, actual, h);
            if (!snaps.isEmpty()) info.put("snapshots", snaps);
            if (json) {
                out.println(QemuJson.pretty(info));
            } else {
                printHuman(info, h, out);
            }
            return 0;
        } catch (BlockException e) {
            err.println("vblk: Could not open '" + filename + "': " + e.getMessage());
            return 1;
        } finally {
            ImgSupport.close(ctx, node);
            ctx.close();
        }
    }

    private record HeaderAndSnapshots(Qcow2Header header, java.util.List<Map<String, Object>> snapshots) {}

    private static long lengthOf(AioContext ctx, BlockNode n) {
        long[] len = {0};
        ctx.run(() -> {
            len[0] = n.getLength();
            return 0;
        });
        return len[0];
    }

    /** The ImageInfo members qemu-img prints, insertion ordered as QEMU builds them. */
    static Map<String, Object> info(String filename, String fmt, long fileLength, long actual, Qcow2Header h) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("filename", filename);
        m.put("format", fmt);
        m.put("dirty-flag", h != null && (h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) != 0);
        if (actual >= 0) m.put("actual-size", actual);
        m.put("virtual-size", h != null ? h.size : fileLength);
        if (h != null) {
            m.put("cluster-size", (long) h.clusterSize());
            if (h.backingFile != null) {
                m.put("backing-filename", h.backingFile);
                m.put("full-backing-filename", fullBackingName(filename, h.backingFile));
                if (h.backingFormat != null) m.put("backing-filename-format", h.backingFormat);
            }
            Map<String, Object> data = new LinkedHashMap<>();
            if (h.version == 2) {
                data.put("compat", "0.10");
                data.put("compression-type", h.compressionType() == 0 ? "zlib" : "zstd");
                data.put("refcount-bits", (long) h.refcountBits());
            } else {
                data.put("compat", "1.1");
                data.put("compression-type", h.compressionType() == 0 ? "zlib" : "zstd");
                data.put("lazy-refcounts", (h.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0);
                data.put("refcount-bits", (long) h.refcountBits());
                data.put("corrupt", (h.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) != 0);
                data.put("extended-l2", (h.incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) != 0);
            }
            Map<String, Object> spec = new LinkedHashMap<>();
            spec.put("type", "qcow2");
            spec.put("data", data);
            m.put("format-specific", spec);
        }
        return m;
    }

    /**
     * The snapshot table as ImageInfo's "snapshots" list (qcow2_read_snapshots +
     * qcow2_snapshot_list), bounded by the header's validated nb_snapshots and the 64 MiB table limit.
     */
    static java.util.List<Map<String, Object>> readSnapshots(CheckFile f, Qcow2Header h) throws BlockException {
        java.util.List<Map<String, Object>> list = new java.util.ArrayList<>();
        long off = h.snapshotsOffset;
        byte[] hdr = new byte[40];
        for (int i = 0; i < h.nbSnapshots; i++) {
            off = (off + 7) & ~7L;
            if (f.read(off, hdr, 0, 40) < 0) throw new BlockException(Errno.EIO, "Could not read the snapshot table");
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(hdr);
            int idLen = b.getShort(12) & 0xffff;
            int nameLen = b.getShort(14) & 0xffff;
            long dateSec = b.getInt(16) & 0xffffffffL;
            long dateNsec = b.getInt(20) & 0xffffffffL;
            long clock = b.getLong(24);
            long vmState = b.getInt(32) & 0xffffffffL;
            long extra = b.getInt(36) & 0xffffffffL;
            if (extra > 1024) throw new BlockException(Errno.EFBIG, "Too much extra metadata in snapshot table entry " + i);
            off += 40;
            byte[] ex = new byte[(int) extra];
            if (f.read(off, ex, 0, ex.length) < 0) throw new BlockException(Errno.EIO, "Could not read the snapshot table");
            java.nio.ByteBuffer eb = java.nio.ByteBuffer.wrap(ex);
            if (extra >= 8) vmState = eb.getLong(0);
            long icount = extra >= 24 ? eb.getLong(16) : -1;
            off += extra;
            byte[] names = new byte[idLen + nameLen];
            if (f.read(off, names, 0, names.length) < 0) throw new BlockException(Errno.EIO, "Could not read the snapshot table");
            off += names.length;
            if (off - h.snapshotsOffset > QCOW_MAX_SNAPSHOTS_SIZE) throw new BlockException(Errno.EFBIG, "Snapshot table is too big");
            Map<String, Object> sn = new LinkedHashMap<>();
            sn.put("id", new String(names, 0, idLen, java.nio.charset.StandardCharsets.UTF_8));
            sn.put("name", new String(names, idLen, nameLen, java.nio.charset.StandardCharsets.UTF_8));
            sn.put("vm-state-size", vmState);
            sn.put("date-sec", dateSec);
            sn.put("date-nsec", dateNsec);
            sn.put("vm-clock-sec", Long.divideUnsigned(clock, 1_000_000_000L));
            sn.put("vm-clock-nsec", Long.remainderUnsigned(clock, 1_000_000_000L));
            if (icount != -1) sn.put("icount", icount);
            list.add(sn);
        }
        return list;
    }

    /** bdrv_get_full_backing_filename: a relative name is relative to the image's directory. */
    static String fullBackingName(String image, String backing) {
        if (backing.startsWith("/") || backing.contains("://")) return backing;
        int slash = image.lastIndexOf('/');
        return slash < 0 ? backing : image.substring(0, slash + 1) + backing;
    }

    /** bdrv_image_info_dump. */
    @SuppressWarnings("unchecked")
    static void printHuman(Map<String, Object> m, Qcow2Header h, PrintStream out) {
        long vsize = (Long) m.get("virtual-size");
        out.println("image: " + m.get("filename"));
        out.println("file format: " + m.get("format"));
        out.println("virtual size: " + ImgSupport.sizeToStr(vsize) + " (" + vsize + " bytes)");
        Object actual = m.get("actual-size");
        out.println("disk size: " + (actual == null ? "unavailable" : ImgSupport.sizeToStr((Long) actual)));
        if (m.containsKey("cluster-size")) out.println("cluster_size: " + m.get("cluster-size"));
        if (Boolean.TRUE.equals(m.get("dirty-flag"))) out.println("cleanly shut down: no");
        if (m.containsKey("backing-filename")) {
            String b = (String) m.get("backing-filename");
            String full = (String) m.get("full-backing-filename");
            out.println("backing file: " + b + (full.equals(b) ? "" : " (actual path: " + full + ")"));
            if (m.containsKey("backing-filename-format")) out.println("backing file format: " + m.get("backing-filename-format"));
        }
        java.util.List<Map<String, Object>> snaps = (java.util.List<Map<String, Object>>) m.get("snapshots");
        if (snaps != null) {
            out.println("Snapshot list:");
            out.printf("%-10s%-17s%8s%20s%13s%11s%n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
            java.time.format.DateTimeFormatter df = java.time.format.DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");
            for (Map<String, Object> sn : snaps) {
                long secs = (Long) sn.get("vm-clock-sec");
                long ns = (Long) sn.get("vm-clock-nsec");
                String clock = String.format("%02d:%02d:%02d.%03d", secs / 3600, (secs / 60) % 60, secs % 60, ns / 1000000);
                String date = java.time.Instant.ofEpochSecond((Long) sn.get("date-sec")).atZone(java.time.ZoneId.systemDefault()).format(df);
                Object ic = sn.get("icount");
                out.printf("%-9s %-16s %8s%20s%13s%11s%n", sn.get("id"), sn.get("name"), ImgSupport.sizeToStr((Long) sn.get("vm-state-size")),
                        date, clock, ic == null ? "" : ic.toString());
            }
        }
        Map<String, Object> spec = (Map<String, Object>) m.get("format-specific");
        if (spec != null) {
            out.println("Format specific information:");
            Map<String, Object> data = (Map<String, Object>) spec.get("data");
            for (Map.Entry<String, Object> e : data.entrySet()) {
                out.println("    " + e.getKey().replace('-', ' ') + ": " + e.getValue());
            }
        }
    }
}
