module github.com/doorstep/doorstep/pkg

go 1.26.7
