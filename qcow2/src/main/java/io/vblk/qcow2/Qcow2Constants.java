package io.vblk.qcow2;

/**
 * The qcow2 spec constants in one place, with the spec's (and QEMU's qcow2.h) names: magic,
 * header field offsets, feature bits and their feature-table names, header extension types,
 * table entry masks and QEMU's size limits.
 */
public final class Qcow2Constants {
    private Qcow2Constants() {}

    /** "QFI\xfb" (QCOW_MAGIC). */
    public static final int QCOW_MAGIC = 0x514649FB;

    // ---- header geometry
    /** Size of the version 2 header (fields up to snapshots_offset). */
    public static final int V2_HEADER_SIZE = 72;
    /** Smallest legal version 3 header_length. */
    public static final int V3_MIN_HEADER_LENGTH = 104;
    /** header_length QEMU writes for version 3 (sizeof(QCowHeader), incl. compression_type and padding). */
    public static final int V3_HEADER_LENGTH = 112;
    /** Offset of compression_type inside the v3 header. */
    public static final int OFF_COMPRESSION_TYPE = 104;
    /** Byte offset of l1_size in the header; l1_size + l1_table_offset are 12 contiguous bytes. */
    public static final int OFF_L1_SIZE = 36;
    /** Byte offset of refcount_table_offset; + refcount_table_clusters are 12 contiguous bytes. */
    public static final int OFF_REFCOUNT_TABLE_OFFSET = 48;
    /** Byte offset of incompatible_features. */
    public static final int OFF_INCOMPATIBLE_FEATURES = 72;
    /** Byte offset of autoclear_features. */
    public static final int OFF_AUTOCLEAR_FEATURES = 88;
    /** Longest backing file name QEMU accepts (1023 bytes). */
    public static final int MAX_BACKING_FILE_SIZE = 1023;

    // ---- feature bits
    public static final long QCOW2_INCOMPAT_DIRTY = 1L << 0;
    public static final long QCOW2_INCOMPAT_CORRUPT = 1L << 1;
    public static final long QCOW2_INCOMPAT_DATA_FILE = 1L << 2;
    public static final long QCOW2_INCOMPAT_COMPRESSION = 1L << 3;
    public static final long QCOW2_INCOMPAT_EXTL2 = 1L << 4;
    /** Incompatible bits this implementation understands (it may still refuse some at open). */
    public static final long QCOW2_INCOMPAT_MASK = 0x1F;
    public static final long QCOW2_COMPAT_LAZY_REFCOUNTS = 1L << 0;
    public static final long QCOW2_COMPAT_FEAT_MASK = 0x1;
    public static final long QCOW2_AUTOCLEAR_BITMAPS = 1L << 0;
    public static final long QCOW2_AUTOCLEAR_DATA_FILE_RAW = 1L << 1;
    public static final long QCOW2_AUTOCLEAR_MASK = 0x3;

    /** Feature table types. */
    public static final int QCOW2_FEAT_TYPE_INCOMPATIBLE = 0;
    public static final int QCOW2_FEAT_TYPE_COMPATIBLE = 1;
    public static final int QCOW2_FEAT_TYPE_AUTOCLEAR = 2;
    /** Size of one feature name table entry and of its name field. */
    public static final int FEATURE_ENTRY_SIZE = 48;
    public static final int FEATURE_NAME_SIZE = 46;

    /** The feature names QEMU writes into the feature name table, as {type, bit, name}. */
    public static final Object[][] FEATURE_NAMES = {
        {QCOW2_FEAT_TYPE_INCOMPATIBLE, 0, "dirty bit"},
        {QCOW2_FEAT_TYPE_INCOMPATIBLE, 1, "corrupt bit"},
        {QCOW2_FEAT_TYPE_INCOMPATIBLE, 2, "external data file"},
        {QCOW2_FEAT_TYPE_INCOMPATIBLE, 3, "compression type"},
        {QCOW2_FEAT_TYPE_INCOMPATIBLE, 4, "extended L2 entries"},
        {QCOW2_FEAT_TYPE_COMPATIBLE, 0, "lazy refcounts"},
        {QCOW2_FEAT_TYPE_AUTOCLEAR, 0, "bitmaps"},
        {QCOW2_FEAT_TYPE_AUTOCLEAR, 1, "raw external data"},
    };

    // ---- header extensions
    public static final int QCOW2_EXT_MAGIC_END = 0;
    public static final int QCOW2_EXT_MAGIC_BACKING_FORMAT = 0xE2792ACA;
    public static final int QCOW2_EXT_MAGIC_FEATURE_TABLE = 0x6803F857;
    public static final int QCOW2_EXT_MAGIC_BITMAPS = 0x23852875;
    public static final int QCOW2_EXT_MAGIC_CRYPTO_HEADER = 0x0537BE77;
    public static final int QCOW2_EXT_MAGIC_DATA_FILE = 0x44415441;

    // ---- crypt_method / compression_type
    public static final int QCOW_CRYPT_NONE = 0;
    public static final int QCOW_CRYPT_AES = 1;
    public static final int QCOW_CRYPT_LUKS = 2;
    public static final int QCOW2_COMPRESSION_TYPE_ZLIB = 0;
    public static final int QCOW2_COMPRESSION_TYPE_ZSTD = 1;

    // ---- table entries
    public static final long QCOW_OFLAG_COPIED = 1L << 63;
    public static final long QCOW_OFLAG_COMPRESSED = 1L << 62;
    public static final long QCOW_OFLAG_ZERO = 1L;
    public static final long L1E_OFFSET_MASK = 0x00fffffffffffe00L;
    public static final long L1E_RESERVED_MASK = 0x7f000000000001ffL;
    public static final long L2E_OFFSET_MASK = 0x00fffffffffffe00L;
    public static final long L2E_STD_RESERVED_MASK = 0x3f000000000001feL;
    public static final long REFT_OFFSET_MASK = 0xfffffffffffffe00L;
    public static final long REFT_RESERVED_MASK = 0x1ffL;

    // ---- limits (qcow2.h)
    public static final int MIN_CLUSTER_BITS = 9;
    public static final int MAX_CLUSTER_BITS = 21;
    public static final int DEFAULT_CLUSTER_BITS = 16;
    public static final int MAX_REFCOUNT_ORDER = 6;
    public static final long QCOW_MAX_L1_SIZE = 32L << 20;           // bytes
    public static final long QCOW_MAX_REFTABLE_SIZE = 8L << 20;      // bytes
    public static final long QCOW_MAX_CLUSTER_OFFSET = (1L << 56) - 1;
    public static final int QCOW_MAX_SNAPSHOTS = 65536;
    public static final long QCOW_MAX_SNAPSHOTS_SIZE = 1024L * QCOW_MAX_SNAPSHOTS;
    public static final int QCOW2_MAX_WORKERS = 8;
    public static final int MIN_L2_CACHE_SIZE = 2;          // entries
    public static final int MIN_REFCOUNT_CACHE_SIZE = 4;    // clusters
    public static final long DEFAULT_L2_CACHE_MAX_SIZE = 32L << 20;
    public static final int DEFAULT_L2_SLICE_SIZE = 4096;   // when the cache cannot cover the disk
    /** perform_cow reads both COW regions with one request when the gap is at most this. */
    public static final int COW_READ_MERGE_GAP = 16384;

    /** The name of a feature bit from the built-in table, or null. */
    public static String builtinFeatureName(int type, int bit) {
        for (Object[] f : FEATURE_NAMES) {
            if ((Integer) f[0] == type && (Integer) f[1] == bit) return (String) f[2];
        }
        return null;
    }
}
