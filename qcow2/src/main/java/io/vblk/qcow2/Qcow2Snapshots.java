package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import java.nio.ByteBuffer;

/**
 * The internal snapshot table, read only as far as writes need it (qcow2_read_snapshots): the size
 * of the table and each snapshot's L1 table location, for the overlap check. Snapshots are never
 * created or changed here; writes respect them through refcounts > 1 (COW, no COPIED).
 * Immutable after open.
 */
final class Qcow2Snapshots {
    long tableSize;
    long[] l1Offsets = new long[0];
    int[] l1Sizes = new int[0];

    static Qcow2Snapshots read(BlockNode file, Qcow2Header h, long fileLength) throws BlockException {
        Qcow2Snapshots sn = new Qcow2Snapshots();
        int n = h.nbSnapshots;
        if (n == 0) return sn;
        if (h.snapshotsOffset >= fileLength) throw new BlockException(Errno.EIO, "Snapshot table lies beyond the end of the file");
        long avail = Math.min(QCOW_MAX_SNAPSHOTS_SIZE, fileLength - h.snapshotsOffset);
        sn.l1Offsets = new long[n];
        sn.l1Sizes = new int[n];
        // read the table in one piece, bounded by the spec limit and the file
        try (NativeBuffer b = NativeBuffer.allocate(avail, 4096)) {
            BlockException.check(file.preadv(h.snapshotsOffset, avail, IoVector.of(b.address(), avail), 0, 0), "Could not read the snapshot table");
            ByteBuffer bb = b.segment().asByteBuffer();
            long off = 0;
            for (int i = 0; i < n; i++) {
                off = (off + 7) & ~7L;
                if (off + 40 > avail) throw new BlockException(Errno.EIO, "Snapshot table is truncated (snapshot " + i + ")");
                long l1Off = bb.getLong((int) off);
                int l1Size = bb.getInt((int) off + 8);
                int idLen = Short.toUnsignedInt(bb.getShort((int) off + 12));
                int nameLen = Short.toUnsignedInt(bb.getShort((int) off + 14));
                long extra = Integer.toUnsignedLong(bb.getInt((int) off + 36));
                if (extra > 1024) throw new BlockException(Errno.EFBIG, "Too much extra metadata in snapshot " + i);
                off += 40 + extra + idLen + nameLen;
                if (off > avail) throw new BlockException(Errno.EIO, "Snapshot table is truncated (snapshot " + i + ")");
                if ((l1Off & (h.clusterSize() - 1)) != 0 || Integer.toUnsignedLong(l1Size) * 8 > QCOW_MAX_L1_SIZE) {
                    throw new BlockException(Errno.EIO, "Snapshot " + i + " L1 table is invalid");
                }
                sn.l1Offsets[i] = l1Off;
                sn.l1Sizes[i] = l1Size;
            }
            sn.tableSize = off;
        }
        return sn;
    }
}
