package io.vblk.virtio.driver;

/** How {@link GuestQueue#submit} lays a request out in descriptors. */
public enum Layout {
    /**
     * header, each data buffer, status: one descriptor each (Linux's layout when INDIRECT_DESC is
     * not negotiated; with it, Linux puts every request of more than one buffer in an indirect
     * table, as {@link #INDIRECT}).
     */
    DIRECT,
    /** the 16-byte header split over two descriptors (7 + 9 bytes), then data and status. */
    SPLIT_HEADER,
    /** one descriptor pointing at an indirect table holding the whole request. */
    INDIRECT,
    /** the header direct, then an indirect descriptor at the end of the chain for data and status. */
    INDIRECT_TAIL
}
