module memtube

go 1.19
