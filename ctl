down 9
