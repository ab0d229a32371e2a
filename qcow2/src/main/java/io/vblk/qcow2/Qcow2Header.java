package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The qcow2 header of cluster 0 with its extensions and backing file name: parsed from bytes with
 * full validation (QEMU's qcow2_do_open header checks and qcow2_read_extensions) and serialized
 * back (qcow2_update_header). The image is hostile data: every field is checked before it is used
 * to size anything, and each failure is a one-line {@link BlockException}.
 *
 * <p>Unknown header extensions and unknown trailing header bytes are kept byte for byte and
 * written back unchanged. Not thread safe: the driver guards its instance with its lock.
 */
public final class Qcow2Header {
    /** An extension kept as raw bytes (unknown types, and known ones we only carry). */
    public record Extension(int type, byte[] data) {}

    /** One feature name table entry. */
    public record FeatureName(int type, int bit, String name) {}

    public int version;
    public long backingFileOffset;
    public int backingFileSize;
    public int clusterBits;
    public long size;
    public int cryptMethod;
    public int l1Size;
    public long l1TableOffset;
    public long refcountTableOffset;
    public int refcountTableClusters;
    public int nbSnapshots;
    public long snapshotsOffset;
    public long incompatibleFeatures;
    public long compatibleFeatures;
    public long autoclearFeatures;
    public int refcountOrder = 4;
    public int headerLength = V2_HEADER_SIZE;
    /** Header bytes from offset 104 to header_length (compression_type, padding, unknown fields), v3 only. */
    public byte[] tail = new byte[0];

    /** Backing file name, or null. */
    public String backingFile;
    /** Backing format from the extension, or null. */
    public String backingFormat;
    /** Feature name table from the image (empty if absent). */
    public List<FeatureName> featureTable = new ArrayList<>();
    /** True if the image carried a feature table (it is rewritten with the built-in names). */
    public boolean hasFeatureTable;
    /** Extensions other than backing format, feature table and end, in their original order. */
    public List<Extension> otherExtensions = new ArrayList<>();

    public int clusterSize() {
        return 1 << clusterBits;
    }

    public int refcountBits() {
        return 1 << refcountOrder;
    }

    public int compressionType() {
        return tail.length > 0 ? tail[0] & 0xff : 0;
    }

    /** Entries in one L2 table (standard entries). */
    public int l2Entries() {
        return clusterSize() / 8;
    }

    /** L1 entries needed to map {@code size} bytes with these cluster bits (overflow safe). */
    public static long l1SizeFor(long size, int clusterBits) {
        int shift = clusterBits + (clusterBits - 3);
        if (shift >= 63) return size == 0 ? 0 : 1;
        long span = 1L << shift;
        return (size + span - 1) >>> shift;
    }

    private static BlockException bad(String msg) {
        return new BlockException(Errno.EINVAL, msg);
    }

    /**
     * Parses and validates a header from the first bytes of an image (at least cluster 0 or the
     * whole file if shorter). Checks the fields only; table placement against the file length is
     * {@link #checkInsideFile}.
     */
    public static Qcow2Header parse(byte[] buf) throws BlockException {
        if (buf.length < V2_HEADER_SIZE) {
            throw bad("Image is not in qcow2 format (file too short for a qcow2 header)");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        if (b.getInt(0) != QCOW_MAGIC) {
            throw bad("Image is not in qcow2 format (bad magic)");
        }
        Qcow2Header h = new Qcow2Header();
        h.version = b.getInt(4);
        if (h.version < 2 || h.version > 3) {
            throw new BlockException(Errno.ENOTSUP, "Unsupported qcow2 version " + Integer.toUnsignedString(h.version));
        }
        h.backingFileOffset = b.getLong(8);
        h.backingFileSize = b.getInt(16);
        h.clusterBits = b.getInt(20);
        h.size = b.getLong(24);
        h.cryptMethod = b.getInt(32);
        h.l1Size = b.getInt(36);
        h.l1TableOffset = b.getLong(40);
        h.refcountTableOffset = b.getLong(48);
        h.refcountTableClusters = b.getInt(56);
        h.nbSnapshots = b.getInt(60);
        h.snapshotsOffset = b.getLong(64);

        if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
            throw bad("Unsupported cluster size: 2^" + Integer.toUnsignedString(h.clusterBits));
        }
        long cs = h.clusterSize();
        if (h.version == 2) {
            h.refcountOrder = 4;
            h.headerLength = V2_HEADER_SIZE;
        } else {
            if (buf.length < V3_MIN_HEADER_LENGTH) {
                throw bad("qcow2 header too short");
            }
            h.incompatibleFeatures = b.getLong(72);
            h.compatibleFeatures = b.getLong(80);
            h.autoclearFeatures = b.getLong(88);
            h.refcountOrder = b.getInt(96);
            h.headerLength = b.getInt(100);
            if (Integer.toUnsignedLong(h.headerLength) < V3_MIN_HEADER_LENGTH) {
                throw bad("qcow2 header too short (header_length " + Integer.toUnsignedString(h.headerLength) + " < 104)");
            }
            if (Integer.toUnsignedLong(h.headerLength) > cs) {
                throw bad("qcow2 header exceeds cluster size (header_length " + Integer.toUnsignedString(h.headerLength) + ")");
            }
            if ((h.headerLength & 7) != 0) {
                throw bad("qcow2 header_length " + h.headerLength + " is not a multiple of 8");
            }
            if (buf.length < h.headerLength) {
                throw bad("qcow2 header truncated (file shorter than header_length)");
            }
            h.tail = new byte[h.headerLength - V3_MIN_HEADER_LENGTH];
            System.arraycopy(buf, V3_MIN_HEADER_LENGTH, h.tail, 0, h.tail.length);
        }
        if (Integer.toUnsignedLong(h.refcountOrder) > MAX_REFCOUNT_ORDER) {
            throw bad("Reference count entry width too large; may not exceed 64 bits (refcount_order " + Integer.toUnsignedString(h.refcountOrder) + ")");
        }
        // header extensions end where the backing file name starts, or at the end of cluster 0
        long extEnd = cs;
        if (h.backingFileOffset != 0) {
            if (h.backingFileOffset < 0 || h.backingFileOffset >= cs
                    || Integer.toUnsignedLong(h.backingFileSize) > MAX_BACKING_FILE_SIZE
                    || h.backingFileOffset + Integer.toUnsignedLong(h.backingFileSize) > cs) {
                throw bad("Backing file name too long or outside cluster 0");
            }
            if (h.backingFileOffset < h.headerLength) {
                throw bad("Backing file name overlaps the qcow2 header");
            }
            extEnd = h.backingFileOffset;
        }
        h.readExtensions(buf, h.headerLength, extEnd);
        if (h.backingFileOffset != 0) {
            int end = (int) (h.backingFileOffset + h.backingFileSize);
            if (end > buf.length) throw bad("Backing file name beyond the end of the file");
            h.backingFile = new String(buf, (int) h.backingFileOffset, h.backingFileSize, StandardCharsets.UTF_8);
        }

        // incompatible features: unknown bits are refused by name
        long unknown = h.incompatibleFeatures & ~QCOW2_INCOMPAT_MASK;
        if (unknown != 0) {
            throw new BlockException(Errno.ENOTSUP, "Unsupported qcow2 feature(s): " + h.featureNames(QCOW2_FEAT_TYPE_INCOMPATIBLE, unknown));
        }
        int ct = h.compressionType();
        if (ct != 0 && (h.incompatibleFeatures & QCOW2_INCOMPAT_COMPRESSION) == 0) {
            throw bad("Compression type " + ct + " set without the compression type incompatible bit");
        }
        if (ct == 0 && (h.incompatibleFeatures & QCOW2_INCOMPAT_COMPRESSION) != 0) {
            throw bad("Compression type incompatible bit set with the default compression type");
        }
        if (ct > QCOW2_COMPRESSION_TYPE_ZSTD) {
            throw new BlockException(Errno.ENOTSUP, "Unknown compression type " + ct);
        }

        // sizes and offsets
        if (h.size < 0) {
            throw bad("Image size too large (" + Long.toUnsignedString(h.size) + ")");
        }
        long l1Bytes = Integer.toUnsignedLong(h.l1Size) * 8;
        if (l1Bytes > QCOW_MAX_L1_SIZE) {
            throw new BlockException(Errno.EFBIG, "Active L1 table too large (l1_size " + Integer.toUnsignedString(h.l1Size) + ")");
        }
        long need = l1SizeFor(h.size, h.clusterBits);
        if (need > Integer.toUnsignedLong(h.l1Size)) {
            throw bad("L1 table is too small (l1_size " + Integer.toUnsignedString(h.l1Size) + ", image size needs " + need + ")");
        }
        checkTable("L1 table", h.l1TableOffset, l1Bytes, cs, h.l1Size != 0);
        long rtBytes = Integer.toUnsignedLong(h.refcountTableClusters) * cs;
        if (rtBytes > QCOW_MAX_REFTABLE_SIZE || h.refcountTableClusters == 0) {
            throw bad("Reference count table size invalid (" + Integer.toUnsignedString(h.refcountTableClusters) + " clusters)");
        }
        checkTable("Reference count table", h.refcountTableOffset, rtBytes, cs, true);
        if (Integer.toUnsignedLong(h.nbSnapshots) > QCOW_MAX_SNAPSHOTS) {
            throw bad("Too many snapshots (" + Integer.toUnsignedString(h.nbSnapshots) + ")");
        }
        checkTable("Snapshot table", h.snapshotsOffset, 0, cs, h.nbSnapshots != 0);
        return h;
    }

    private static void checkTable(String what, long offset, long bytes, long cs, boolean used) throws BlockException {
        if (!used && offset == 0) return;
        if (offset < 0 || offset > QCOW_MAX_CLUSTER_OFFSET || bytes > QCOW_MAX_CLUSTER_OFFSET - offset) {
            throw bad(what + " offset invalid (0x" + Long.toHexString(offset) + ")");
        }
        if ((offset & (cs - 1)) != 0) {
            throw bad(what + " offset 0x" + Long.toHexString(offset) + " is not cluster aligned");
        }
        if (used && offset == 0) {
            throw bad(what + " at offset 0 overlaps the header");
        }
    }

    /** Refuses an L1 or refcount table that does not lie inside a file of {@code fileLength} bytes. */
    public void checkInsideFile(long fileLength) throws BlockException {
        long l1Bytes = Integer.toUnsignedLong(l1Size) * 8;
        if (l1Size != 0 && l1TableOffset + l1Bytes > fileLength) {
            throw bad("L1 table (0x" + Long.toHexString(l1TableOffset) + "+" + l1Bytes + ") lies beyond the end of the file (" + fileLength + ")");
        }
        long rtBytes = Integer.toUnsignedLong(refcountTableClusters) << clusterBits;
        if (refcountTableOffset + rtBytes > fileLength) {
            throw bad("Reference count table (0x" + Long.toHexString(refcountTableOffset) + "+" + rtBytes + ") lies beyond the end of the file (" + fileLength + ")");
        }
        if (l1Size != 0 && rangesOverlap(l1TableOffset, l1Bytes, refcountTableOffset, rtBytes)) {
            throw bad("L1 table overlaps the reference count table");
        }
    }

    static boolean rangesOverlap(long a, long alen, long b, long blen) {
        return a < b + blen && b < a + alen;
    }

    private void readExtensions(byte[] buf, int start, long end) throws BlockException {
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        long off = start;
        boolean seenFormat = false, seenTable = false;
        while (true) {
            if (off + 8 > end || off + 8 > buf.length) {
                // QEMU stops quietly when no room is left for another extension header
                if (off + 8 > end) break;
                throw bad("qcow2 header extension area truncated by the end of the file");
            }
            int type = b.getInt((int) off);
            long len = Integer.toUnsignedLong(b.getInt((int) off + 4));
            off += 8;
            if (type == QCOW2_EXT_MAGIC_END) break;
            if (len > end - off || off + len > buf.length) {
                throw bad("Invalid qcow2 header extension 0x" + Integer.toHexString(type) + ": length " + len + " overruns cluster 0");
            }
            byte[] data = new byte[(int) len];
            System.arraycopy(buf, (int) off, data, 0, (int) len);
            switch (type) {
                case QCOW2_EXT_MAGIC_BACKING_FORMAT -> {
                    if (seenFormat) throw bad("Duplicate backing format header extension");
                    seenFormat = true;
                    if (len > 1023) throw bad("Backing format name too long (" + len + " bytes)");
                    backingFormat = new String(data, StandardCharsets.UTF_8);
                }
                case QCOW2_EXT_MAGIC_FEATURE_TABLE -> {
                    if (seenTable) throw bad("Duplicate feature name table header extension");
                    seenTable = true;
                    hasFeatureTable = true;
                    for (int i = 0; i + FEATURE_ENTRY_SIZE <= data.length; i += FEATURE_ENTRY_SIZE) {
                        int n = 0;
                        while (n < FEATURE_NAME_SIZE && data[i + 2 + n] != 0) n++;
                        featureTable.add(new FeatureName(data[i] & 0xff, data[i + 1] & 0xff,
                                new String(data, i + 2, n, StandardCharsets.UTF_8)));
                    }
                }
                default -> {
                    for (Extension e : otherExtensions) {
                        if (e.type() == type) throw bad("Duplicate header extension 0x" + Integer.toHexString(type));
                    }
                    otherExtensions.add(new Extension(type, data));
                }
            }
            off += (len + 7) & ~7L;
        }
    }

    /** Names of the bits of {@code bits} of a feature type: from the image's table, the built-in names, or "Unknown ... feature bit N". */
    public String featureNames(int type, long bits) {
        StringBuilder sb = new StringBuilder();
        for (int bit = 0; bit < 64; bit++) {
            if ((bits & (1L << bit)) == 0) continue;
            String name = null;
            for (FeatureName f : featureTable) {
                if (f.type() == type && f.bit() == bit) name = f.name();
            }
            if (name == null) name = builtinFeatureName(type, bit);
            if (name == null) {
                name = "Unknown " + (type == 0 ? "incompatible" : type == 1 ? "compatible" : "autoclear") + " feature bit " + bit;
            }
            if (!sb.isEmpty()) sb.append(", ");
            sb.append(name);
        }
        return sb.toString();
    }

    /**
     * Serializes header, extensions (backing format, kept extensions, feature table, end marker)
     * and backing file name into one cluster (qcow2_update_header). Updates
     * backing_file_offset/size to where the name lands. Throws if it does not fit in cluster 0.
     */
    public byte[] serialize() throws BlockException {
        int cs = clusterSize();
        ByteBuffer b = ByteBuffer.allocate(cs).order(ByteOrder.BIG_ENDIAN);
        int hlen = version == 2 ? V2_HEADER_SIZE : headerLength;
        b.position(hlen);
        if (backingFormat != null) {
            putExt(b, QCOW2_EXT_MAGIC_BACKING_FORMAT, backingFormat.getBytes(StandardCharsets.UTF_8));
        }
        for (Extension e : otherExtensions) {
            putExt(b, e.type(), e.data());
        }
        if (hasFeatureTable) {
            byte[] t = new byte[FEATURE_NAMES.length * FEATURE_ENTRY_SIZE];
            for (int i = 0; i < FEATURE_NAMES.length; i++) {
                t[i * FEATURE_ENTRY_SIZE] = (byte) (int) (Integer) FEATURE_NAMES[i][0];
                t[i * FEATURE_ENTRY_SIZE + 1] = (byte) (int) (Integer) FEATURE_NAMES[i][1];
                byte[] n = ((String) FEATURE_NAMES[i][2]).getBytes(StandardCharsets.UTF_8);
                System.arraycopy(n, 0, t, i * FEATURE_ENTRY_SIZE + 2, Math.min(n.length, FEATURE_NAME_SIZE));
            }
            putExt(b, QCOW2_EXT_MAGIC_FEATURE_TABLE, t);
        }
        need(b, 8);
        b.putInt(QCOW2_EXT_MAGIC_END).putInt(0);
        if (backingFile != null) {
            byte[] n = backingFile.getBytes(StandardCharsets.UTF_8);
            if (n.length > MAX_BACKING_FILE_SIZE) throw bad("Backing file name too long");
            need(b, n.length);
            backingFileOffset = b.position();
            backingFileSize = n.length;
            b.put(n);
        } else {
            backingFileOffset = 0;
            backingFileSize = 0;
        }
        int used = b.position();
        b.putInt(0, QCOW_MAGIC).putInt(4, version).putLong(8, backingFileOffset).putInt(16, backingFileSize)
                .putInt(20, clusterBits).putLong(24, size).putInt(32, cryptMethod).putInt(36, l1Size)
                .putLong(40, l1TableOffset).putLong(48, refcountTableOffset).putInt(56, refcountTableClusters)
                .putInt(60, nbSnapshots).putLong(64, snapshotsOffset);
        if (version >= 3) {
            b.putLong(72, incompatibleFeatures).putLong(80, compatibleFeatures).putLong(88, autoclearFeatures)
                    .putInt(96, refcountOrder).putInt(100, headerLength);
            b.put(V3_MIN_HEADER_LENGTH, tail, 0, tail.length);
        }
        byte[] out = new byte[used];
        b.get(0, out, 0, used);
        return out;
    }

    private static void need(ByteBuffer b, int n) throws BlockException {
        if (b.remaining() < n) throw new BlockException(Errno.ENOSPC, "qcow2 header and extensions do not fit in cluster 0");
    }

    private static void putExt(ByteBuffer b, int type, byte[] data) throws BlockException {
        int padded = (data.length + 7) & ~7;
        need(b, 8 + padded);
        b.putInt(type).putInt(data.length).put(data);
        b.position(b.position() + padded - data.length);
    }

    /** A new header with QEMU's defaults for a version ({@code qemu-img create}); the caller fills offsets. */
    public static Qcow2Header newHeader(int version, int clusterBits, long size, int refcountOrder) {
        Qcow2Header h = new Qcow2Header();
        h.version = version;
        h.clusterBits = clusterBits;
        h.size = size;
        h.refcountOrder = version == 2 ? 4 : refcountOrder;
        h.headerLength = version == 2 ? V2_HEADER_SIZE : V3_HEADER_LENGTH;
        h.tail = version == 2 ? new byte[0] : new byte[V3_HEADER_LENGTH - V3_MIN_HEADER_LENGTH];
        h.hasFeatureTable = version >= 3;
        return h;
    }
}
