"""The repository: an encrypted, content-addressed store of blobs, trees and snapshots."""
